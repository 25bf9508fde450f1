//! Where backups go: a `file:///path` directory or an `s3://bucket/prefix` of an S3-compatible
//! store, behind object_store's one API. S3 credentials, region and endpoint come from the usual
//! AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`)
//! or from the URL's query (`?endpoint=…&region=…`); requests are path-style, which every
//! self-hosted S3 server accepts.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, aws::AmazonS3Builder, local::LocalFileSystem, path::Path as Key,
    prefix::PrefixStore,
};

use crate::error::BackupError;

/// An object store and the place in it that holds one backup.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// The URL as given, without its query (never holds a secret: credentials come from the
    /// environment).
    display: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.display)
    }
}

impl Target {
    /// Parses `file:///abs/path` or `s3://bucket[/prefix][?endpoint=URL&region=R]`, for
    /// writing: a `file://` directory is created if missing.
    pub fn parse(url: &str) -> Result<Target, BackupError> {
        Target::open(url, true)
    }

    /// Like [`Target::parse`], for reading a backup that exists: a missing `file://` directory
    /// is an error (and is not created).
    pub fn parse_existing(url: &str) -> Result<Target, BackupError> {
        Target::open(url, false)
    }

    fn open(url: &str, create: bool) -> Result<Target, BackupError> {
        let bad = |reason: &str| BackupError::BadTarget {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        if let Some(path) = base.strip_prefix("file://") {
            if !query.is_empty() {
                return Err(bad("a file:// target takes no options"));
            }
            if !path.starts_with('/') {
                return Err(bad(
                    "a file:// target needs an absolute path: file:///srv/backups",
                ));
            }
            if create {
                std::fs::create_dir_all(path)
                    .map_err(|e| bad(&format!("cannot create the directory: {e}")))?;
            } else if !std::path::Path::new(path).is_dir() {
                return Err(bad("there is no backup here: the directory does not exist"));
            }
            let fs = LocalFileSystem::new_with_prefix(path)
                .map_err(|e| bad(&format!("cannot use the directory: {e}")))?;
            return Ok(Target {
                store: Arc::new(fs),
                display: base.to_string(),
            });
        }
        let Some(rest) = base.strip_prefix("s3://") else {
            return Err(bad("use file:///PATH or s3://BUCKET/PREFIX"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is missing: s3://BUCKET/PREFIX"));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            // A target that is down must not hold the shipper (or, replicated, a push) for
            // object_store's default three minutes of retries.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(30)),
            );
        let endpoint_from_env = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        let mut endpoint = endpoint_from_env;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => endpoint = Some(v.to_string()),
                Some(("region", v)) => builder = builder.with_region(v),
                _ => return Err(bad(&format!("unknown option {pair:?} (endpoint, region)"))),
            }
        }
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let s3 = builder.build().map_err(|e| bad(&e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Target {
            store,
            display: base.to_string(),
        })
    }

    fn err(&self, source: object_store::Error) -> BackupError {
        BackupError::Store {
            target: self.display.clone(),
            source,
        }
    }

    pub async fn put(&self, key: &Key, bytes: Bytes) -> Result<(), BackupError> {
        self.store
            .put(key, PutPayload::from_bytes(bytes))
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Writes `key` only if no object has that name (create-only: S3's `If-None-Match: *`);
    /// false when one had.
    pub async fn put_new(&self, key: &Key, bytes: Bytes) -> Result<bool, BackupError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    pub async fn get(&self, key: &Key) -> Result<Bytes, BackupError> {
        let got = self.store.get(key).await.map_err(|e| self.err(e))?;
        got.bytes().await.map_err(|e| self.err(e))
    }

    /// The object, or None when the target has none by that name.
    pub async fn get_opt(&self, key: &Key) -> Result<Option<Bytes>, BackupError> {
        match self.store.get(key).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(|e| self.err(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<ObjectMeta>, BackupError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }
}
