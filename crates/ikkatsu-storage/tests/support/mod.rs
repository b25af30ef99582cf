//! The backends of the listing-failure matrix, and the servers the tests run of their own: a
//! TCP proxy they cut, a moto that checks keys, an HTTP server that refuses every request.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ikkatsu_storage::{Storage, StorageConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The value of a variable `scripts/test-servers env` exports; panics saying what to run.
pub fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these tests need the storage test servers. Run \
             `scripts/test-servers start` and `eval \"$(scripts/test-servers env)\"`, then the \
             tests again"
        ),
    }
}

/// A name no other test uses, valid as a bucket or container name everywhere.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ikk-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The storage as its messages show it.
pub fn shown(storage: &Storage) -> String {
    storage.url().to_string()
}

/// The wrong password, secret or key of the wrong-credentials case.
const WRONG: &str = "not-the-password";
/// A valid base64 Azure key that is not the account's.
const WRONG_AZURE_KEY: &str = "d3Jvbmcta2V5LXdyb25nLWtleQ==";

/// One remote backend of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Ftp,
    Ftps,
    Sftp,
    S3,
    Webdav,
    Gcs,
    Azblob,
}

impl Backend {
    /// The test server's `host:port`.
    pub fn address(self) -> String {
        match self {
            Backend::Ftp | Backend::Ftps => format!(
                "{}:{}",
                var("IKKATSU_TEST_FTP_HOST"),
                var("IKKATSU_TEST_FTP_PORT")
            ),
            Backend::Sftp => format!(
                "{}:{}",
                var("IKKATSU_TEST_SFTP_HOST"),
                var("IKKATSU_TEST_SFTP_PORT")
            ),
            Backend::S3 => authority(&var("IKKATSU_TEST_S3_ENDPOINT")),
            Backend::Webdav => authority(&var("IKKATSU_TEST_WEBDAV_URL")),
            Backend::Gcs => authority(&var("IKKATSU_TEST_GCS_ENDPOINT")),
            Backend::Azblob => authority(&var("IKKATSU_TEST_AZBLOB_ENDPOINT")),
        }
    }

    /// The test server's port.
    pub fn port(self) -> u16 {
        let address = self.address();
        address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {address}"))
    }

    /// Whether the backend lists a prefix flat, in pages (object stores), rather than one
    /// directory at a time.
    pub fn lists_pages(self) -> bool {
        matches!(self, Backend::S3 | Backend::Gcs | Backend::Azblob)
    }

    /// The secrets its connections carry (none may appear in a message).
    pub fn secrets(self) -> Vec<String> {
        match self {
            Backend::Ftp | Backend::Ftps => vec![var("IKKATSU_TEST_FTP_PASSWORD"), WRONG.into()],
            Backend::Webdav => vec![var("IKKATSU_TEST_WEBDAV_PASSWORD"), WRONG.into()],
            Backend::S3 => vec![var("IKKATSU_TEST_S3_SECRET_KEY"), WRONG.into()],
            Backend::Azblob => vec![var("IKKATSU_TEST_AZBLOB_KEY"), WRONG_AZURE_KEY.into()],
            Backend::Sftp | Backend::Gcs => Vec::new(),
        }
    }

    /// The storage at `address` (`host:port`) with root `prefix` (the bucket or container
    /// for object stores), with the right credentials or wrong ones, retried once.
    pub fn open(self, address: &str, prefix: &str, right: bool) -> Storage {
        let connection = self
            .connection(address, prefix, right)
            .with_option("retries", "1");
        connection
            .open()
            .unwrap_or_else(|e| panic!("open {connection:?}: {}", e.report()))
    }

    fn connection(self, address: &str, prefix: &str, right: bool) -> StorageConnection {
        let secret = |name: &str| if right { var(name) } else { WRONG.to_string() };
        match self {
            Backend::Ftp | Backend::Ftps => {
                let scheme = if self == Backend::Ftp { "ftp" } else { "ftps" };
                let c = StorageConnection::new(format!(
                    "{scheme}://{}@{address}/{prefix}",
                    var("IKKATSU_TEST_FTP_USER")
                ))
                .with_option("password", secret("IKKATSU_TEST_FTP_PASSWORD"));
                if self == Backend::Ftps {
                    c.with_option("ca-file", var("IKKATSU_TEST_CA"))
                } else {
                    c
                }
            }
            Backend::Sftp => {
                let key = if right {
                    var("IKKATSU_TEST_SFTP_KEY")
                } else {
                    stranger_key()
                };
                StorageConnection::new(format!(
                    "sftp://{}@{address}{}/{prefix}",
                    var("IKKATSU_TEST_SFTP_USER"),
                    var("IKKATSU_TEST_SFTP_ROOT"),
                ))
                .with_option("key-file", key)
                .with_option("known-hosts", known_hosts(address))
            }
            Backend::S3 => StorageConnection::new(format!("s3://{prefix}/root"))
                .with_option("endpoint", format!("http://{address}"))
                .with_option("region", var("IKKATSU_TEST_S3_REGION"))
                .with_option(
                    "access-key-id",
                    if right {
                        var("IKKATSU_TEST_S3_ACCESS_KEY")
                    } else {
                        "AKIAWRONGWRONGWRONG0".to_string()
                    },
                )
                .with_option("secret-access-key", secret("IKKATSU_TEST_S3_SECRET_KEY")),
            Backend::Webdav => StorageConnection::new(format!("webdav+http://{address}/{prefix}"))
                .with_option("user", var("IKKATSU_TEST_WEBDAV_USER"))
                .with_option("password", secret("IKKATSU_TEST_WEBDAV_PASSWORD")),
            Backend::Gcs => StorageConnection::new(format!("gcs://{prefix}/root"))
                .with_option("endpoint", format!("http://{address}"))
                .with_option("anonymous", "true"),
            Backend::Azblob => {
                let endpoint = var("IKKATSU_TEST_AZBLOB_ENDPOINT");
                let path = endpoint
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('/'))
                    .map_or(String::new(), |(_, p)| format!("/{p}"));
                StorageConnection::new(format!("azblob://{prefix}/root"))
                    .with_option("endpoint", format!("http://{address}{path}"))
                    .with_option("account", var("IKKATSU_TEST_AZBLOB_ACCOUNT"))
                    .with_option(
                        "account-key",
                        if right {
                            var("IKKATSU_TEST_AZBLOB_KEY")
                        } else {
                            WRONG_AZURE_KEY.to_string()
                        },
                    )
            }
        }
    }

    /// The storage through `proxy`.
    pub fn open_at(self, proxy: &Proxy, prefix: &str) -> Storage {
        self.open(&format!("127.0.0.1:{}", proxy.port), prefix, true)
    }

    /// The storage on the test server, its bucket or container created.
    pub async fn fixture(self, prefix: &str) -> Storage {
        match self {
            Backend::S3 => {
                let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
                http_ok(reqwest_client().put(format!("{endpoint}/{prefix}"))).await;
            }
            Backend::Gcs => {
                let endpoint = var("IKKATSU_TEST_GCS_ENDPOINT");
                http_ok(
                    reqwest_client()
                        .post(format!("{endpoint}/storage/v1/b?project=ikkatsu-test"))
                        .header("content-type", "application/json")
                        .body(format!("{{\"name\":\"{prefix}\"}}")),
                )
                .await;
            }
            Backend::Azblob => azure_container("PUT", prefix).await,
            _ => {}
        }
        self.open(&self.address(), prefix, true)
    }

    /// Deletes what the test wrote (best effort).
    pub async fn cleanup(self, storage: Storage) {
        let _ = storage.operator().delete_with("/").recursive(true).await;
        if self == Backend::Azblob {
            azure_container("DELETE", storage.operator().info().name().as_str()).await;
        }
    }
}

fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A key the SFTP server does not know.
fn stranger_key() -> String {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ikk-stranger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("key dir");
        let key = dir.join("stranger");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        key.display().to_string()
    })
    .clone()
}

/// A known_hosts file with the test server's key recorded for `address` (a proxy's port).
fn known_hosts(address: &str) -> String {
    let sshd = var("IKKATSU_TEST_SFTP_PORT");
    let port = address.rsplit_once(':').map_or("22", |(_, p)| p);
    let original = var("IKKATSU_TEST_SFTP_KNOWN_HOSTS");
    if port == sshd {
        return original;
    }
    let recorded = std::fs::read_to_string(&original)
        .expect("known_hosts")
        .replace(&format!("]:{sshd} "), &format!("]:{port} "));
    let path = std::env::temp_dir().join(format!("ikk-known-hosts-{}-{port}", std::process::id()));
    std::fs::write(&path, recorded).expect("write known_hosts");
    path.display().to_string()
}

fn reqwest_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn http_ok(request: reqwest::RequestBuilder) {
    let resp = request.send().await.expect("request to the emulator");
    let status = resp.status();
    assert!(
        status.is_success(),
        "HTTP {status}: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// Creates (`PUT`) or deletes (`DELETE`) `container` on Azurite, signed with the account key.
async fn azure_container(method: &str, container: &str) {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let endpoint = var("IKKATSU_TEST_AZBLOB_ENDPOINT");
    let account = var("IKKATSU_TEST_AZBLOB_ACCOUNT");
    let key = base64::engine::general_purpose::STANDARD
        .decode(var("IKKATSU_TEST_AZBLOB_KEY"))
        .expect("account key is base64");
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let path = endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or(String::new(), |(_, p)| format!("/{p}"));
    let to_sign = format!(
        "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{path}/{container}\nrestype:container"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let request = reqwest_client()
        .request(method, format!("{endpoint}/{container}?restype=container"))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("authorization", format!("SharedKey {account}:{signature}"))
        .header("content-length", "0");
    http_ok(request).await;
}

/// A TCP proxy on a port of its own to the test server's `target` port, that counts the
/// bytes the server sends and, once they pass `cut_after`, closes every connection open at
/// that moment. [`Cut::Stop`]: it closes its listener too (as a server that stops does), new
/// connections are refused from then on; [`Cut::Once`]: it goes on accepting (as after a
/// network glitch).
pub struct Proxy {
    pub port: u16,
    bytes: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: u16, cut_after: u64, how: Cut) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let bytes = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = watch::channel(false);
        let (counted, flag) = (bytes.clone(), cut.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s), if how == Cut::Stop => break,
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { break };
                        let (bytes, stop, flag) = (counted.clone(), stop.clone(), flag.clone());
                        connections.spawn(async move {
                            if let Ok(outbound) =
                                tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                            {
                                pipe(inbound, outbound, bytes, cut_after, stop, flag).await;
                            }
                        });
                    }
                }
            }
            // Dropping the listener and the connections: refused and cut from now on.
            connections.abort_all();
        });
        Proxy {
            port,
            bytes,
            cut,
            task,
        }
    }

    /// The bytes the server sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Whether the proxy cut the connections.
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Stops the proxy.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn pipe(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    bytes: Arc<AtomicU64>,
    cut_after: u64,
    stop: watch::Sender<bool>,
    cut: Arc<AtomicBool>,
) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let up = tokio::io::copy(&mut client_read, &mut server_write);
    let down = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return client_write.shutdown().await;
            }
            let total = bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if total > cut_after && !cut.swap(true, Ordering::SeqCst) {
                let _ = stop.send(true);
                return Ok(());
            }
            client_write.write_all(&buf[..n]).await?;
        }
    };
    // A connection made after the cut is not cut.
    let after_the_cut = cut.load(Ordering::SeqCst);
    let mut stopped = stop.subscribe();
    tokio::select! {
        _ = async { let _ = tokio::join!(up, down); } => {}
        _ = stopped.wait_for(|s| *s), if !after_the_cut => {}
    }
}

/// What the proxy does when its byte count passes the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Cut the open connections once and go on accepting new ones.
    Once,
    /// Cut the open connections and refuse new ones.
    Stop,
}

/// A moto server of the test's own that checks access keys (`INITIAL_NO_AUTH_ACTION_COUNT=0`:
/// authentication from the first request on), stopped when dropped.
pub struct Moto {
    pub port: u16,
    child: Child,
}

impl Moto {
    pub async fn start_with_auth() -> Moto {
        let port = free_port();
        tokio::task::spawn_blocking(move || {
            let venv =
                std::path::Path::new(&var("IKKATSU_TEST_SERVERS_DIR")).join("venv/bin/moto_server");
            let child = Command::new(&venv)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {} (scripts/test-servers start): {e}", venv.display())
                });
            let moto = Moto { port, child };
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "moto did not start on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
            moto
        })
        .await
        .expect("start moto")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP server of the test's own that answers every request `401 Unauthorized` with a
/// GCS error body (fake-gcs-server has no authentication); returns its port.
pub async fn refusing_http_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error":{"code":401,"message":"Invalid Credentials","errors":[{"reason":"authError"}]}}"#;
                let response = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}
