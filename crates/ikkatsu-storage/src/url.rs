//! Storage URLs: which backend, where, and how to show the URL without its secrets.

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
}

impl StorageUrl {
    /// Parses `file:///abs`, `file://localhost/abs`, `file:relative`, a plain path,
    /// `memory:` or `memory:name`.
    pub(crate) fn parse(url: &str) -> Result<StorageUrl> {
        let shown = mask_secrets(url);
        if url.trim().is_empty() {
            return Err(Error::config(
                "empty storage URL: give a directory, `file:///absolute/path` or `memory:`",
            ));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            return Ok(StorageUrl::Fs {
                root: absolute(PathBuf::from(url), &shown)?,
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    let (host, path) = match after.find('/') {
                        Some(i) => after.split_at(i),
                        None => (after, ""),
                    };
                    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
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
            other => Err(Error::config(format!(
                "storage URL {shown}: the scheme `{other}` is not supported by this build; \
                 supported: file (`file:///path` or a plain path) and `memory:`"
            ))),
        }
    }
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
            "storage URL {shown}: the decoded path is not UTF-8"
        ))
    })
}

/// The URL with its password and secret-looking query parameters replaced by `***`, for
/// messages and logs.
pub fn mask_secrets(url: &str) -> String {
    let mut out = url.to_string();
    // user:password@host
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    // ?password=...&token=...
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "credential",
        "signature",
    ]
    .iter()
    .any(|s| key.contains(s))
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
    fn errors_name_the_url_without_secrets() {
        let err = StorageUrl::parse("sftp://bob:hunter2@host/dir").unwrap_err();
        assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config);
        assert!(
            err.message().contains("sftp://bob:***@host/dir"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("hunter2"));
        let err = StorageUrl::parse("file://server/share").unwrap_err();
        assert!(err.message().contains("file://server/share"));
        assert_eq!(
            mask_secrets("s3://bucket/p?region=x&secret_access_key=abc"),
            "s3://bucket/p?region=x&secret_access_key=***"
        );
        assert!(StorageUrl::parse("").is_err());
        assert!(StorageUrl::parse("file:///a%zz").is_err());
    }
}
