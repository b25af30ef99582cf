//! The item listeners of a chunk step: read, process and write listeners, each told in
//! the order they were added.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::listener::{ItemProcessListener, ItemReadListener, ItemWriteListener};

/// The item listeners of a chunk step.
pub(super) struct ItemListeners<I, O> {
    pub read: Vec<Arc<dyn ItemReadListener<I>>>,
    pub process: Vec<Arc<dyn ItemProcessListener<I, O>>>,
    pub write: Vec<Arc<dyn ItemWriteListener<O>>>,
}

impl<I, O> Default for ItemListeners<I, O> {
    fn default() -> Self {
        ItemListeners {
            read: Vec::new(),
            process: Vec::new(),
            write: Vec::new(),
        }
    }
}

impl<I: Sync, O: Sync> ItemListeners<I, O> {
    /// The result of processing `item`, told to the process listeners; `Err` is a
    /// listener's error (it fails the chunk), `Ok` the result.
    pub async fn processed(
        &self,
        item: &I,
        result: Result<Option<O>>,
    ) -> Result<Result<Option<O>>> {
        for listener in &self.process {
            match &result {
                Ok(out) => listener.after_process(item, out.as_ref()).await?,
                Err(err) => listener.on_process_error(item, err).await?,
            }
        }
        Ok(result)
    }

    pub async fn before_process(&self, item: &I) -> Result<()> {
        for listener in &self.process {
            listener.before_process(item).await?;
        }
        Ok(())
    }

    pub async fn before_write(&self, items: &[O]) -> Result<()> {
        for listener in &self.write {
            listener.before_write(items).await?;
        }
        Ok(())
    }

    /// The result of writing `items`, told to the write listeners; `Err` is a listener's
    /// error (it fails the chunk), `Ok` the result.
    pub async fn written(&self, items: &[O], result: Result<()>) -> Result<Result<()>> {
        for listener in &self.write {
            match &result {
                Ok(()) => listener.after_write(items).await?,
                Err(err) => listener.on_write_error(items, err).await?,
            }
        }
        Ok(result)
    }
}

/// Tells the read listeners before a read.
pub(super) async fn before_read<I: Sync>(listeners: &[Arc<dyn ItemReadListener<I>>]) -> Result<()> {
    for listener in listeners {
        listener.before_read().await?;
    }
    Ok(())
}

/// Tells the read listeners of a read's result: the item read, none at the end of the
/// input, or the error.
pub(super) async fn after_read<I: Sync>(
    listeners: &[Arc<dyn ItemReadListener<I>>],
    result: std::result::Result<Option<&I>, &Error>,
) -> Result<()> {
    for listener in listeners {
        match result {
            Ok(Some(item)) => listener.after_read(item).await?,
            Ok(None) => {}
            Err(err) => listener.on_read_error(err).await?,
        }
    }
    Ok(())
}
