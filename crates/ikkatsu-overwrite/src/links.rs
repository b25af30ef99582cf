//! Symbolic links when the overwrite flow writes in place (docs/adr/0012-symbolic-links.md):
//! links are followed for reading only, and a file reached through one is never written.

use ikkatsu_core::Result;
use ikkatsu_storage::{FileInfo, LinkTarget, LocalFiles};

/// Why `file` must not be overwritten in place, when it is reached through a symbolic link
/// (the file is a link, or lies under a linked directory); `None` for a plain path. Writing
/// through the link could reach outside the root, or transform a file twice (once under its
/// own path); replacing the link would turn it into a plain file.
pub(crate) fn read_only(local: &LocalFiles, file: &FileInfo) -> Result<Option<String>> {
    Ok(match local.resolve_link(&file.path)? {
        None => None,
        Some(LinkTarget {
            in_root: Some(real),
            ..
        }) => Some(format!(
            "`{}` is reached through a symbolic link to `{real}` inside the source: not \
             overwritten through the link (links are followed for reading only; the file is \
             overwritten under its own path `{real}` when the walk selects it)",
            file.path
        )),
        Some(LinkTarget { real, .. }) => Some(format!(
            "`{}` is reached through a symbolic link to `{}`, outside the source: not \
             overwritten (links are followed for reading only; give --target to write the \
             results elsewhere)",
            file.path,
            real.display()
        )),
    })
}

/// Why the result for `path` must not be written to a local target, when the path there is
/// reached through a symbolic link: writing would go through the link, possibly outside
/// the target. `None` for a plain path (or one that does not exist yet).
pub(crate) fn target_read_only(local: &LocalFiles, path: &str) -> Result<Option<String>> {
    Ok(local.resolve_link(path)?.map(|LinkTarget { real, .. }| {
        format!(
            "`{path}` in the target is reached through a symbolic link to `{}`: not written \
             (a link in the target is neither written through nor replaced)",
            real.display()
        )
    }))
}
