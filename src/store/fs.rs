//! A [`MediaStore`] on the filesystem: a directory, content-addressed, written atomically.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{MediaStore, StoreError};
use crate::ids::ConversationId;

/// Files under a directory, named by the SHA-256 of their bytes (`ab/abcdef…`), with the
/// content type beside them (`ab/abcdef….type`). Each file is written to a temporary name and
/// renamed into place, so a reader never sees half a file.
#[derive(Debug, Clone)]
pub struct FsMediaStore {
    dir: PathBuf,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl FsMediaStore {
    /// A store under `dir`, created if needed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the directory cannot be created.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        Ok(Self { dir })
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        // Keys are hex digests: anything else could name a path outside the directory.
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.dir.join(&key[..2]).join(key))
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, path).await.map_err(io)
}

#[async_trait::async_trait]
impl MediaStore for FsMediaStore {
    async fn put(
        &self,
        conversation: &ConversationId,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<String, StoreError> {
        let key = super::media_key(conversation, &bytes);
        let path = self.path(&key).expect("a digest is a valid key");
        if tokio::fs::try_exists(&path).await.map_err(io)? {
            return Ok(key);
        }
        tokio::fs::create_dir_all(path.parent().expect("two levels"))
            .await
            .map_err(io)?;
        if let Some(t) = content_type {
            write_atomically(&path.with_extension("type"), t.as_bytes()).await?;
        }
        write_atomically(&path, &bytes).await?;
        Ok(key)
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let content_type = tokio::fs::read_to_string(path.with_extension("type"))
                    .await
                    .ok();
                Ok(Some((Bytes::from(bytes), content_type)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let Some(path) = self.path(key) else {
            return Ok(false);
        };
        match tokio::fs::remove_file(path.with_extension("type")).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }
}
