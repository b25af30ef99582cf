//! [`ObjectItemReader`]: records from one object or from every object matching a glob, in
//! sorted order, restartable at the last committed record.

use async_trait::async_trait;
use futures::TryStreamExt;
use ikkatsu_core::{Error, ErrorKind, ExecutionContext, ItemReader, ItemStream, Record, Result};
use ikkatsu_storage::{FileInfo, PathGlobs, Storage};

use super::format::{Object, Position, RecordCursor, RecordDecoder};
use super::{Location, ObjectStorage, is_glob, literal_prefix, object_name, storage_builders};
use crate::compress::Compression;
use crate::file::ContextKeys;

/// Reads [`Record`]s from objects on a [`Storage`]: one object, or every object matching a
/// glob, one after the other in sorted path order. Made for one format by
/// [`ObjectItemReader::csv`], [`ObjectItemReader::json_lines`], [`ObjectItemReader::json`]
/// or [`ObjectItemReader::parquet`].
///
/// Restartable: after every chunk the object being read and the position in it are saved
/// under `object.reader.file`, `.record`, `.offset` and `.line` (see
/// [`ObjectItemReader::with_context_prefix`]); a restart continues right after the last
/// committed record. An object that cannot be opened as its format (a corrupt Parquet
/// footer, say) is a [`ErrorKind::Parse`] error; when a skip policy skips it, reading goes
/// on with the next object.
pub struct ObjectItemReader {
    at: ObjectStorage,
    exclude: Vec<String>,
    compression: Compression,
    decoder: Box<dyn RecordDecoder>,
    keys: ContextKeys,
    files: Vec<FileInfo>,
    /// The object being read (`files.len()` when all are done).
    index: usize,
    cursor: Option<Box<dyn RecordCursor>>,
    /// The position in `files[index]` (or in the last object when all are done).
    position: Position,
    /// Where to resume in `files[index]` when its cursor is opened.
    resume: Position,
    opened: bool,
    /// The column names of the last object read to its end, if its format has them.
    columns: Option<Vec<String>>,
}

impl std::fmt::Debug for ObjectItemReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectItemReader")
            .field("format", &self.decoder.format())
            .field("storage", &self.at.location.storage)
            .field("path", &self.at.location.path)
            .finish_non_exhaustive()
    }
}

impl ObjectItemReader {
    pub(crate) fn new(
        storage: Option<&str>,
        path: &str,
        exclude: Vec<String>,
        compression: Compression,
        decoder: Box<dyn RecordDecoder>,
    ) -> Result<Self> {
        let location = Location::new(storage, path, decoder.format())?;
        if location.path.is_empty() {
            return Err(Error::config(format!(
                "{} reader on {}: `path` is empty; give the object to read or a glob such as `in/*.{}`",
                decoder.format(),
                location.storage,
                decoder.format().to_ascii_lowercase()
            )));
        }
        // Checks the globs now rather than at open.
        PathGlobs::new(std::slice::from_ref(&location.path), &exclude)?;
        Ok(ObjectItemReader {
            at: ObjectStorage::new(location, decoder.format(), "reader", "read"),
            exclude,
            compression,
            decoder,
            keys: ContextKeys::new("object.reader"),
            files: Vec::new(),
            index: 0,
            cursor: None,
            position: Position::default(),
            resume: Position::default(),
            opened: false,
            columns: None,
        })
    }

    storage_builders!("object.reader");

    /// The objects to read, sorted by path.
    pub(crate) async fn list(
        storage: &Storage,
        location: &Location,
        exclude: &[String],
        format: &str,
    ) -> Result<Vec<FileInfo>> {
        let path = &location.path;
        if !is_glob(path) {
            let file = storage.stat(path).await.map_err(|err| {
                let hint = if err.kind() == ErrorKind::NotFound {
                    "; check the `path` property (and the job parameters it uses)"
                } else {
                    ""
                };
                Error::new(
                    err.kind(),
                    format!(
                        "cannot open {format} input `{}`{hint}",
                        object_name(storage, path)
                    ),
                )
                .set_temporary(err.is_temporary())
                .with_source(err)
            })?;
            return Ok(vec![file]);
        }
        // Hidden names (`.part.tmp`, `.DS_Store`) below the glob's fixed directories are
        // skipped unless the glob itself names hidden ones.
        let filter = PathGlobs::new(std::slice::from_ref(path), exclude)?;
        let prefix = literal_prefix(path);
        let hidden_wanted = path.starts_with('.') || path.contains("/.");
        let keep = |file: &FileInfo| {
            let below = file
                .path
                .strip_prefix(prefix.as_str())
                .unwrap_or(&file.path)
                .trim_start_matches('/');
            filter.matches(&file.path)
                && (hidden_wanted || !below.split('/').any(|name| name.starts_with('.')))
        };
        let mut files: Vec<FileInfo> = storage
            .list(&prefix, true)?
            .try_filter(|file| std::future::ready(keep(file)))
            .try_collect()
            .await?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        if files.is_empty() {
            tracing::warn!(
                storage = storage.url(),
                glob = %path,
                "no object matches the glob: nothing to read"
            );
        }
        Ok(files)
    }

    async fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if self.cursor.is_none() {
                let resume = std::mem::take(&mut self.resume);
                let Some(file) = self.files.get(self.index) else {
                    return Ok(None);
                };
                let storage = self.at.get()?.clone();
                let object = Object {
                    storage: &storage,
                    file,
                    name: object_name(&storage, &file.path),
                    codec: self.compression.codec_for(&file.path),
                };
                match self.decoder.open(object, resume).await {
                    Ok(cursor) => {
                        self.position = resume;
                        self.cursor = Some(cursor);
                    }
                    Err(err) => {
                        if err.kind() == ErrorKind::Parse {
                            // The whole object is unreadable: a skip moves on to the next.
                            self.advance();
                        } else {
                            self.resume = resume;
                        }
                        return Err(err);
                    }
                }
            }
            let Some(cursor) = self.cursor.as_mut() else {
                continue;
            };
            let next = cursor.next().await;
            self.position = cursor.position();
            match next {
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => {
                    if let Some(columns) = cursor.columns() {
                        self.columns = Some(columns.to_vec());
                    }
                    self.advance();
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Moves on to the next object (keeping the position of the last one at the end).
    fn advance(&mut self) {
        self.cursor = None;
        self.index += 1;
        if self.index < self.files.len() {
            self.position = Position::default();
        }
    }
}

#[async_trait]
impl ItemStream for ObjectItemReader {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        let storage = self.at.open()?;
        self.files = ObjectItemReader::list(
            &storage,
            &self.at.location,
            &self.exclude,
            self.decoder.format(),
        )
        .await?;
        self.index = 0;
        self.cursor = None;
        self.position = Position::default();
        self.resume = Position::default();
        if let Some(file) = context.get::<String>(&self.keys.key("file"))? {
            let Ok(index) = self
                .files
                .binary_search_by(|candidate| candidate.path.as_str().cmp(file.as_str()))
            else {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "cannot resume the {} reader: `{}`, the object it was reading when the \
                         last run stopped, is no longer among the inputs ({} objects match `{}`); \
                         restore it, or start a new job instance",
                        self.decoder.format(),
                        object_name(&storage, &file),
                        self.files.len(),
                        self.at.location.path
                    ),
                ));
            };
            let position = Position {
                record: self.keys.get_u64(context, "record")?.unwrap_or(0),
                offset: self.keys.get_u64(context, "offset")?.unwrap_or(0),
                line: self.keys.get_u64(context, "line")?.unwrap_or(0),
            };
            tracing::debug!(
                object = %object_name(&storage, &file),
                index,
                record = position.record,
                "object reader resumed"
            );
            self.index = index;
            self.position = position;
            self.resume = position;
        }
        self.opened = true;
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        if !self.opened {
            return Ok(());
        }
        let file = self
            .files
            .get(self.index)
            .or_else(|| self.files.last())
            .map(|file| file.path.clone());
        if let Some(file) = file {
            context.put(self.keys.key("file"), file);
            context.put(self.keys.key("record"), self.position.record);
            context.put(self.keys.key("offset"), self.position.offset);
            context.put(self.keys.key("line"), self.position.line);
        }
        if let Some(columns) = &self.columns {
            context.put(crate::csv::READER_COLUMNS_KEY, columns);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.cursor = None;
        self.opened = false;
        self.at.close();
        Ok(())
    }
}

#[async_trait]
impl ItemReader<Record> for ObjectItemReader {
    async fn read(&mut self) -> Result<Option<Record>> {
        self.next_record().await
    }

    /// `update` only saves the position: the step may read the next chunk ahead.
    fn supports_read_ahead(&self) -> bool {
        true
    }
}
