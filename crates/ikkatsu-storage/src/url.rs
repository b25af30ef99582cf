//! Storage URLs: which backend, where, and how to show the URL without its secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ikkatsu_core::{Error, Result};

/// A parsed storage URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageUrl {
    /// The local file system, rooted at an absolute directory.
    Fs {
        /// The root directory.
        root: PathBuf,
    },
    /// An in-memory storage; named ones are shared within the process.
    Memory {
        /// The name, `None` for a private storage.
        name: Option<String>,
    },
    /// A server or a bucket.
    Remote(RemoteUrl),
}

/// `scheme://[user[:password]@]host[:port][/path][?key=value&...]`, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RemoteUrl {
    /// The scheme, lower case.
    pub(crate) scheme: String,
    /// The user name of the authority.
    pub(crate) user: Option<String>,
    /// The password of the authority.
    pub(crate) password: Option<String>,
    /// Host name, IP address (IPv6 without brackets), bucket or container.
    pub(crate) host: String,
    /// The port, when given.
    pub(crate) port: Option<u16>,
    /// The path without leading and trailing `/`; empty for the root.
    pub(crate) path: String,
    /// The query parameters, keys normalized (see [`normalize_key`]).
    pub(crate) query: BTreeMap<String, String>,
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query: BTreeMap<&str, &str> = self
            .query
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_key(k) { "***" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("RemoteUrl")
            .field("scheme", &self.scheme)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("query", &query)
            .finish()
    }
}

impl RemoteUrl {
    /// `host` or `host:port` (IPv6 addresses in brackets), for endpoints.
    #[allow(dead_code)] // Used by the remote backends, which are features.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }
}

impl StorageUrl {
    /// Parses `file:///abs`, `file://localhost/abs`, `file:relative`, a plain path,
    /// `memory:`, `memory:name` or a remote URL (`sftp://user@host:22/dir`, ...).
    pub(crate) fn parse(url: &str) -> Result<StorageUrl> {
        // Its secrets are redacted from every log line and message from now on.
        ikkatsu_core::secret::register_url(url);
        let shown = mask_secrets(url);
        if url.trim().is_empty() {
            return Err(Error::config(
                "empty storage URL: give a directory, `file:///absolute/path`, `memory:` or a \
                 remote URL such as `sftp://user@host/dir` or `s3://bucket/prefix`",
            ));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            return Ok(StorageUrl::Fs {
                root: absolute(PathBuf::from(url), &shown)?,
            });
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    let (host, path) = match after.find('/') {
                        Some(i) => after.split_at(i),
                        None => (after, ""),
                    };
                    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                        // The host without the user and password written before it.
                        let host = host.rsplit('@').next().unwrap_or(host);
                        return Err(Error::config(format!(
                            "storage URL {shown}: file URLs cannot name a remote host ({host}); \
                             write `file:///absolute/path`"
                        )));
                    }
                    if path.is_empty() {
                        return Err(Error::config(format!(
                            "storage URL {shown} has no path: write `file:///absolute/path`"
                        )));
                    }
                    percent_decode(path, &shown)?
                } else {
                    percent_decode(rest, &shown)?
                };
                if path.is_empty() {
                    return Err(Error::config(format!(
                        "storage URL {shown} has no path: write `file:///absolute/path` or `file:relative/path`"
                    )));
                }
                Ok(StorageUrl::Fs {
                    root: absolute(PathBuf::from(path), &shown)?,
                })
            }
            "memory" => {
                let name = rest.trim_start_matches("//");
                Ok(StorageUrl::Memory {
                    name: (!name.is_empty()).then(|| name.to_string()),
                })
            }
            _ => parse_remote(&scheme, rest, &shown).map(StorageUrl::Remote),
        }
    }
}

/// Parses what follows `scheme:` of a remote URL.
fn parse_remote(scheme: &str, rest: &str, shown: &str) -> Result<RemoteUrl> {
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(Error::config(format!(
            "storage URL {shown}: write `{scheme}://host/path`"
        )));
    };
    if rest.contains('#') {
        return Err(Error::config(format!(
            "storage URL {shown}: `#` starts a URL fragment; write `%23` for a `#` in a name"
        )));
    }
    let (before_query, query_text) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            (
                (!user.is_empty())
                    .then(|| percent_decode(user, shown))
                    .transpose()?,
                password.map(|p| percent_decode(p, shown)).transpose()?,
            )
        }
    };
    let (host, port) = split_host_port(hostport, shown)?;
    // An empty host is refused by the backend registry, which knows what it names.
    let host = percent_decode(host, shown)?;
    let path = percent_decode(path, shown)?;
    let path = path.trim_matches('/').to_string();
    if path.split('/').any(|c| c == "..") {
        return Err(Error::config(format!(
            "storage URL {shown}: `..` is not allowed in the path"
        )));
    }
    let mut query = BTreeMap::new();
    for pair in query_text.unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        let key = normalize_key(&percent_decode(key, shown)?);
        let value = percent_decode(value, shown)?;
        if query.insert(key.clone(), value).is_some() {
            return Err(Error::config(format!(
                "storage URL {shown}: the parameter `{key}` is given twice"
            )));
        }
    }
    Ok(RemoteUrl {
        scheme: scheme.to_string(),
        user,
        password,
        host,
        port,
        path,
        query,
    })
}

fn split_host_port<'a>(hostport: &'a str, shown: &str) -> Result<(&'a str, Option<u16>)> {
    let bad_port = |port: &str| {
        Error::config(format!(
            "storage URL {shown}: invalid port `{port}`; give a number from 1 to 65535"
        ))
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(Error::config(format!(
                "storage URL {shown}: unclosed `[` in the IPv6 address"
            )));
        };
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad_port(after)),
        };
        (&rest[..end], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad_port(p))?,
        ),
    };
    Ok((host, port))
}

/// Option keys are compared in lower case with `_` written `-` (`secret_access_key` and
/// `secret-access-key` are the same option).
pub(crate) fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', "-")
}

/// Splits `scheme:rest` when the text is a URL rather than a plain path: the scheme is known,
/// or it is followed by `//`.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    let (scheme, rest) = (&url[..colon], &url[colon + 1..]);
    let valid = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return None;
    }
    let known = matches!(scheme.to_ascii_lowercase().as_str(), "file" | "memory");
    (known || rest.starts_with("//")).then_some((scheme, rest))
}

fn absolute(path: PathBuf, shown: &str) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io(format!("storage URL {shown}: current directory"), e))?;
    Ok(cwd.join(path))
}

fn percent_decode(text: &str, shown: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::config(format!(
                    "storage URL {shown}: invalid percent escape at byte {i}; write `%25` for a literal `%`"
                )));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::config(format!(
            "storage URL {shown}: the decoded text is not UTF-8"
        ))
    })
}

/// The URL with its password and secret-looking query parameters replaced by `***`, for
/// messages and logs: the workspace's one URL masker, [`ikkatsu_core::secret::mask_url`],
/// under the name this crate has always exported.
pub use ikkatsu_core::secret::mask_url as mask_secrets;

/// Whether the option or query parameter `key` holds a secret: the workspace's one rule,
/// [`ikkatsu_core::secret::is_secret_name`] (passwords, passphrases, tokens, keys and
/// credentials, but not the paths of files holding them: `key-file`, `credential-file`).
pub(crate) use ikkatsu_core::secret::is_secret_name as is_secret_key;

/// `url`, a remote URL (tests).
#[cfg(test)]
pub(crate) fn remote(url: &str) -> RemoteUrl {
    match StorageUrl::parse(url).unwrap() {
        StorageUrl::Remote(r) => r,
        other => panic!("{url} parsed as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            StorageUrl::parse("file:///data/in").unwrap(),
            StorageUrl::Fs {
                root: "/data/in".into()
            }
        );
        assert_eq!(
            StorageUrl::parse("file://localhost/my%20dir").unwrap(),
            StorageUrl::Fs {
                root: "/my dir".into()
            }
        );
        assert_eq!(
            StorageUrl::parse("/abs/path").unwrap(),
            StorageUrl::Fs {
                root: "/abs/path".into()
            }
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            StorageUrl::parse("file:rel/dir").unwrap(),
            StorageUrl::Fs {
                root: cwd.join("rel/dir")
            }
        );
        assert_eq!(
            StorageUrl::parse("odd:name").unwrap(),
            StorageUrl::Fs {
                root: cwd.join("odd:name")
            }
        );
        assert_eq!(
            StorageUrl::parse("memory:").unwrap(),
            StorageUrl::Memory { name: None }
        );
        assert_eq!(
            StorageUrl::parse("memory:cache").unwrap(),
            StorageUrl::Memory {
                name: Some("cache".into())
            }
        );
    }

    #[test]
    fn parses_remote_forms() {
        let r = remote("sftp://bob@example.org:2222/srv/in%20box/");
        assert_eq!(r.scheme, "sftp");
        assert_eq!(r.user.as_deref(), Some("bob"));
        assert_eq!(r.password, None);
        assert_eq!(r.host, "example.org");
        assert_eq!(r.port, Some(2222));
        assert_eq!(r.path, "srv/in box");
        assert_eq!(r.authority(), "example.org:2222");

        let r = remote("FTPS://us%40er:p%3Ass@[::1]:2121/d?Timeout=5s");
        assert_eq!(r.scheme, "ftps");
        assert_eq!(r.user.as_deref(), Some("us@er"));
        assert_eq!(r.password.as_deref(), Some("p:ss"));
        assert_eq!(r.host, "::1");
        assert_eq!(r.authority(), "[::1]:2121");
        assert_eq!(r.query.get("timeout").map(String::as_str), Some("5s"));

        let r = remote(
            "s3://bucket/a/b?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1&virtual_host_style",
        );
        assert_eq!(r.host, "bucket");
        assert_eq!(r.path, "a/b");
        assert_eq!(r.port, None);
        assert_eq!(r.query["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(r.query["virtual-host-style"], "true");

        assert_eq!(remote("gs://b").scheme, "gs");
        assert_eq!(remote("gcs://b/").path, "");
        assert_eq!(remote("azblob://c/p").host, "c");
        assert_eq!(
            remote("webdav+https://h/remote.php/dav").scheme,
            "webdav+https"
        );
    }

    #[test]
    fn remote_errors_are_clear() {
        for (url, expect) in [
            ("sftp://host:99999/x", "invalid port"),
            ("sftp://host:abc/x", "invalid port"),
            ("ftp://h/a/../b", "`..`"),
            ("ftp://h/a#b", "%23"),
            ("s3://b/p?region=x&region=y", "given twice"),
            ("sftp://[::1/x", "unclosed"),
        ] {
            let err = StorageUrl::parse(url).unwrap_err();
            assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config, "{url}");
            assert!(err.message().contains(expect), "{url}: {}", err.message());
        }
    }

    #[test]
    fn errors_name_the_url_without_secrets() {
        let err = StorageUrl::parse("file://server/share").unwrap_err();
        assert!(err.message().contains("file://server/share"));
        assert_eq!(
            mask_secrets("s3://bucket/p?region=x&secret_access_key=abc"),
            "s3://bucket/p?region=x&secret_access_key=***"
        );
        assert_eq!(
            mask_secrets(
                "sftp://u@h/d?key-file=/k&key-passphrase=p&known-hosts=/kh&account-key=k&sas-token=t&sig=s"
            ),
            "sftp://u@h/d?key-file=/k&key-passphrase=***&known-hosts=/kh&account-key=***&sas-token=***&sig=***"
        );
        assert!(StorageUrl::parse("").is_err());
        assert!(StorageUrl::parse("file:///a%zz").is_err());
        let debug = format!(
            "{:?}",
            remote("ftp://u:hunter2@h/d?password=hunter3&region=r")
        );
        assert!(!debug.contains("hunter"), "{debug}");
        assert!(debug.contains("region"), "{debug}");
    }

    /// Found by the `storage_url` fuzz target (`scripts/fuzz`): the error about a file URL
    /// naming a host showed the user and password written before the host.
    #[test]
    fn a_file_url_with_a_host_keeps_its_password_out_of_the_error() {
        let err =
            StorageUrl::parse("file://us%40er:p%3Ass@[sftp://us//repass\u{2026}}").unwrap_err();
        assert!(!err.message().contains("p%3Ass"), "{}", err.message());
        assert!(
            err.message().contains("remote host ([sftp:)"),
            "{}",
            err.message()
        );
        let err = StorageUrl::parse("file://bob:hunter22@server/share").unwrap_err();
        assert!(!err.message().contains("hunter22"), "{}", err.message());
        assert!(
            err.message().contains("remote host (server)"),
            "{}",
            err.message()
        );
    }

    proptest::proptest! {
        /// Any user, password, host, port and path survive parsing (percent-encoded as a
        /// URL writer would), and the password never shows in the masked URL.
        #[test]
        fn remote_urls_round_trip_and_mask(
            user in "[a-zA-Z0-9._-]{1,12}",
            password in "[ -~]{1,16}",
            host in "[a-z][a-z0-9-]{0,15}",
            port in 1u16..,
            path in proptest::collection::vec("[^/?#%]{1,8}", 0..4),
        ) {
            let enc = |t: &str| -> String {
                t.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect()
            };
            proptest::prop_assume!(!path.iter().any(|p| p == ".."));
            let path_text: Vec<String> = path.iter().map(|p| enc(p)).collect();
            let url = format!(
                "ftp://{user}:{}@{host}:{port}/{}",
                enc(&password),
                path_text.join("/")
            );
            let r = remote(&url);
            proptest::prop_assert_eq!(r.user.as_deref(), Some(user.as_str()));
            proptest::prop_assert_eq!(r.password.as_deref(), Some(password.as_str()));
            proptest::prop_assert_eq!(&r.host, &host);
            proptest::prop_assert_eq!(r.port, Some(port));
            let expected = path.join("/");
            proptest::prop_assert_eq!(r.path.as_str(), expected.trim_matches('/'));
            let shown = mask_secrets(&url);
            proptest::prop_assert!(shown.contains(":***@"), "{}", shown);
            // The password is replaced, the rest is kept as written (the path may hold
            // the same text as the password).
            let expected_shown = format!("ftp://{user}:***@{host}:{port}/{}", path_text.join("/"));
            proptest::prop_assert_eq!(shown, expected_shown);
        }
    }

    #[test]
    fn secret_keys() {
        for key in [
            "password",
            "key-passphrase",
            "secret-access-key",
            "secret_access_key",
            "session-token",
            "account-key",
            "sas-token",
            "credential",
            "token",
            "key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "user",
            "key-file",
            "known-hosts",
            "credential-file",
            "ca-file",
            "region",
            "endpoint",
            "access-key-id",
            "account",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
