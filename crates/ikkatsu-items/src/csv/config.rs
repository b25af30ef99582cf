//! The properties of the CSV readers and writers, local and on a storage. The CSV dialect
//! properties (`delimiter`, `quote`, `encoding`, `compression`, and `has-header`, `columns`,
//! `lines-to-skip`, `trim` of readers or `header`, `columns` of writers) are declared once here, by [`csv_config!`], for all four
//! configurations; each adds where its input or output is.

/// The default `delimiter`.
pub(crate) fn default_delimiter() -> char {
    ','
}

/// The default `quote`.
pub(crate) fn default_quote() -> char {
    '"'
}

/// The default of `has-header` and `header`.
pub(crate) fn default_true() -> bool {
    true
}

/// Declares a CSV configuration: its own fields (`{ ... }`, before the dialect; for writers
/// a second `{ ... }` after it), the dialect properties of its role (`reader` or `writer`),
/// and a `new` constructor that sets its own fields as given and the dialect to the
/// defaults.
macro_rules! csv_config {
    (
        @struct [$($meta:tt)*] $name:ident
        [$($before:tt)*] [$($role:tt)*] [$($after:tt)*]
        [$($new_meta:tt)*] ($($arg:ident: $arg_ty:ty),*)
        [$($field:ident: $init:expr),*] [$($role_init:tt)*]
    ) => {
        $($meta)*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $name {
            $($before)*
            /// The field delimiter, a single ASCII character (default `,`; `"\t"` for TSV).
            #[serde(default = "crate::csv::config::default_delimiter")]
            pub delimiter: char,
            /// The quote character, a single ASCII character (default `"`).
            #[serde(default = "crate::csv::config::default_quote")]
            pub quote: char,
            /// The text encoding: a WHATWG label such as `Shift_JIS`, `EUC-JP`,
            /// `windows-1252` or `UTF-16LE` (case-insensitive; default UTF-8). Readers
            /// decode to UTF-8 (a byte order mark at the start wins over this and is
            /// skipped); writers encode from UTF-8 (UTF-16 with a byte order mark), and a
            /// character the encoding cannot represent is an error.
            #[serde(default)]
            pub encoding: Option<String>,
            /// How the file is compressed: `auto` (the default: by the name's extension,
            /// `.gz` gzip, `.zst` Zstandard), `none`, `gzip` or `zstd`. On a storage,
            /// writers compress every part with `gzip` or `zstd` and add the extension to
            /// its name (`auto` writes plain parts).
            #[serde(default)]
            pub compression: crate::compress::Compression,
            $($role)*
            $($after)*
        }

        impl $name {
            $($new_meta)*
            pub fn new($($arg: $arg_ty),*) -> Self {
                $name {
                    $($field: $init,)*
                    delimiter: crate::csv::config::default_delimiter(),
                    quote: crate::csv::config::default_quote(),
                    encoding: None,
                    compression: crate::compress::Compression::Auto,
                    $($role_init)*
                }
            }
        }
    };
    (
        reader $(#[$meta:meta])* $name:ident { $($before:tt)* }
        $(#[$new_meta:meta])* fn new($($arg:ident: $arg_ty:ty),*) { $($field:ident: $init:expr),* $(,)? }
    ) => {
        $crate::csv::config::csv_config!(
            @struct [$(#[$meta])*] $name [$($before)*] [
                /// Whether the first row (of the file, of every object on a storage; after
                /// `lines-to-skip`) holds the column names (default `true`; `header` is an
                /// alias). Without a header row and without `columns`, fields are named
                /// `column1`, `column2`, ...
                #[serde(default = "crate::csv::config::default_true", alias = "header")]
                pub has_header: bool,
                /// Explicit column names (`columns` in job YAML, `headers` an alias), used
                /// instead of the header row (which is still skipped when `has-header` is
                /// true). Every row must then have exactly this many fields.
                #[serde(default, rename = "columns", alias = "headers")]
                pub headers: Option<Vec<String>>,
                /// Lines skipped at the start of the file (of every object on a storage)
                /// before the header row or the first row, as they are: they are not parsed
                /// as CSV (default `0`). A line ends at `\n`.
                #[serde(default)]
                pub lines_to_skip: u64,
                /// Trim leading and trailing whitespace of every field and header (default
                /// `false`).
                #[serde(default)]
                pub trim: bool,
            ] []
            [$(#[$new_meta])*] ($($arg: $arg_ty),*) [$($field: $init),*]
            [has_header: true, headers: None, lines_to_skip: 0, trim: false,]
        );
    };
    (
        writer $(#[$meta:meta])* $name:ident { $($before:tt)* } { $($after:tt)* }
        $(#[$new_meta:meta])* fn new($($arg:ident: $arg_ty:ty),*) { $($field:ident: $init:expr),* $(,)? }
    ) => {
        $crate::csv::config::csv_config!(
            @struct [$(#[$meta])*] $name [$($before)*] [
                /// Whether to write a header row with the column names (default `true`): at
                /// the start of the file (with `append`, only when the file is empty), or of
                /// every part on a storage.
                #[serde(default = "crate::csv::config::default_true")]
                pub header: bool,
                /// The columns and their order. Without it, the keys of the first record
                /// written, kept across restarts. Record fields not listed are not written;
                /// listed fields missing from a record are written empty. (The typed writer
                /// follows `T`'s fields instead.)
                #[serde(default)]
                pub columns: Option<Vec<String>>,
            ] [$($after)*]
            [$(#[$new_meta])*] ($($arg: $arg_ty),*) [$($field: $init),*]
            [header: true, columns: None,]
        );
    };
}
pub(crate) use csv_config;
