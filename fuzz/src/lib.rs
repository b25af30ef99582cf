//! What the fuzz targets of `fuzz_targets/` share: input filters that keep a target away from
//! files that never end (`/dev/zero`), the component registry of the built-in types, and the
//! secret checks that several targets make.
//!
//! The targets run with `scripts/fuzz` (see `docs/fuzzing.md`); each asserts that no input
//! panics, plus the cheap invariants its API promises.

use std::cell::RefCell;
use std::sync::Arc;

use ikkatsu_config::{AppConfig, ComponentRegistry};
use ikkatsu_core::secret::{is_secret_name, percent_decode};

/// Whether `text` could make the code under test read a device, a pipe or a kernel file: job
/// files, the application config and job parameters read secret files (`${file:/path}`,
/// `file:///path`), and `/dev/zero`, a FIFO or `/proc/kmsg` never end. The fuzzer may write
/// such a path (the parser's handling of the reference is what is tested, not the file
/// system), so these inputs are skipped: a `file:` followed on its line by a name of such a
/// place, and the YAML escapes that could spell one (`\x64`, `\u0064`, an escaped line break).
pub fn may_name_special_file(text: &str) -> bool {
    if ["\\x", "\\u", "\\U", "\\\n", "\\\r"]
        .iter()
        .any(|escape| text.contains(escape))
    {
        return true;
    }
    text.match_indices("file:").any(|(at, _)| {
        let path = text[at..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        ["dev", "proc", "sys", "run", "fifo", "tty", "std", "fd"]
            .iter()
            .any(|place| path.contains(place))
    })
}

thread_local! {
    static REGISTRY: RefCell<Option<Arc<ComponentRegistry>>> = const { RefCell::new(None) };
}

/// The registry of every built-in component type that this build has (the items and the
/// overwrite tasklet; no Parquet), made once per thread.
pub fn registry() -> Arc<ComponentRegistry> {
    REGISTRY.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let mut registry = ComponentRegistry::new();
                let app = Arc::new(AppConfig::default());
                ikkatsu_items::register(&mut registry, &app);
                ikkatsu_overwrite::register(&mut registry, &app);
                Arc::new(registry)
            })
            .clone()
    })
}

/// The password of `scheme://user:password@host…` as written (the part between the first
/// `:` and the last `@` of the authority), by the rule of `ikkatsu_core::secret::mask_url`.
pub fn url_password(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = start + url[start..end].rfind('@')?;
    let colon = url[start..at].find(':')?;
    Some(&url[start + colon + 1..at])
}

/// The secrets of one input (a URL, option values) and the texts to look for them in.
///
/// A text leaks a secret when it shows it, and the same text made from the input with the
/// secret blanked out (each character an `x`) does not: a secret that a message holds
/// anyway (`timeout` under `token=timeout`, in a list of options) is no leak.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The secrets as the input writes them, to blank out.
    written: Vec<String>,
    /// What to look for: the written secrets, and their percent-decoded forms.
    forms: Vec<String>,
}

impl Secrets {
    /// The password of `url` and the values of its secret-named query parameters, by the
    /// rule of `ikkatsu_core::secret::mask_url` (the query after the first `?` of the URL
    /// with its password masked, split at `&`). `input` is all the target was given (the URL
    /// and what comes with it).
    pub fn of_url(url: &str, input: &str) -> Secrets {
        let mut secrets = Secrets::default();
        let mut without_password = url.to_string();
        if let Some(password) = url_password(url) {
            secrets.add(input, password);
            let start = password.as_ptr() as usize - url.as_ptr() as usize;
            without_password.replace_range(start..start + password.len(), "***");
        }
        if let Some((_, query)) = without_password.split_once('?') {
            for pair in query.split('&') {
                if let Some((key, value)) = pair.split_once('=')
                    && is_secret_name(&percent_decode(key))
                {
                    secrets.add(input, value);
                }
            }
        }
        secrets
    }

    /// Adds `value`, a secret of `input`, when it is long enough that finding it is no
    /// coincidence and `input` holds it only once; a `*` in it could be taken for a mask.
    pub fn add(&mut self, input: &str, value: &str) {
        if value.contains('*') || value.chars().count() < 6 || input.matches(value).count() != 1 {
            return;
        }
        self.written.push(value.to_string());
        self.forms.push(value.to_string());
        let decoded = percent_decode(value);
        if decoded != value && decoded.chars().count() >= 6 && !input.contains(decoded.as_str()) {
            self.forms.push(decoded);
        }
    }

    /// `input` with every secret blanked out.
    pub fn blank(&self, input: &str) -> String {
        let mut out = input.to_string();
        for secret in &self.written {
            out = out.replace(secret.as_str(), &"x".repeat(secret.chars().count()));
        }
        out
    }

    /// Panics when a text made from the input (`shown`) shows a secret that the same text
    /// made from the blanked input (`blanked`) does not; `what` names the text.
    pub fn assert_hidden(&self, what: &str, shown: &str, blanked: &str) {
        for form in &self.forms {
            assert!(
                !shown.contains(form.as_str()) || blanked.contains(form.as_str()),
                "{what} shows the secret {form:?}: {shown}"
            );
        }
    }
}

/// A fresh, empty directory for one run of a target (files of earlier runs removed), under
/// `/dev/shm` when there is one: the targets write and `fsync` files on every run, which
/// costs nothing in memory and milliseconds on a disk.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    thread_local! {
        static ROOT: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
    }
    let root = ROOT.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let shm = std::path::Path::new("/dev/shm");
                let builder = tempfile::Builder::new()
                    .prefix("ikkatsu-fuzz-")
                    .tempdir_in(shm);
                match builder {
                    Ok(dir) => dir,
                    Err(_) => match tempfile::tempdir() {
                        Ok(dir) => dir,
                        Err(err) => panic!("cannot create a scratch directory: {err}"),
                    },
                }
            })
            .path()
            .to_path_buf()
    });
    let dir = root.join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => panic!("cannot empty {}: {err}", dir.display()),
    }
    if let Err(err) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {err}", dir.display());
    }
    dir
}
