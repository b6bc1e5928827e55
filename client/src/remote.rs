//! Remote data: `s3://bucket/key`, `https://host/path` and `http://host/path`, read by
//! byte range through [`object_store`], from any thread.
//!
//! The client expands remote patterns with [`list`] (and takes the CSV sizes from the
//! listing); the workers read the objects by range: [`RemoteObject::get_range`] for
//! known ranges, [`RangeReader`] (`Read + Seek`, aligned blocks fetched on demand, the
//! last two kept) for readers that seek to a footer and then to one record batch.
//!
//! ```no_run
//! use cairn_client::remote;
//!
//! # fn demo() -> Result<(), remote::RemoteError> {
//! assert!(remote::is_remote("s3://bucket/data/accounts.1.csv"));
//! for (url, size) in remote::list("s3://bucket/data/accounts.*.csv")? {
//!     let first_line_and_more = remote::get_range(&url, 0..size.min(100))?;
//!     println!("{url}: {size} bytes, starts with {first_line_and_more:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! - `s3://bucket/…`: [`AmazonS3Builder::from_env`], so the usual variables apply:
//!   `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_REGION` (default `us-east-1`),
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_ALLOW_HTTP` (set automatically when the endpoint is `http://`). A process
//!   may also give options explicitly with [`configure_s3`] (the same names, applied
//!   over the environment): a test process uses it rather than `std::env::set_var`,
//!   which races with other threads reading the environment.
//! - `https://host/path`, `http://host/path`: a plain HTTP store on the scheme and host
//!   (`GET` with `Range`, `HEAD`); there is no listing, so a pattern must name one
//!   object.
//! - Every call has a timeout ([`DEFAULT_TIMEOUT`], [`set_timeout`]); stores are
//!   cached per bucket or host for the life of the process; [`register_store`] puts
//!   any [`ObjectStore`] (e.g. an in-memory one in tests) behind a bucket or host.
//!
//! # Threads
//!
//! The calls block. They run on a small process-wide tokio runtime (2 threads named
//! `cairn-remote`); a caller inside a tokio runtime (the client's tasks) waits from a
//! scoped helper thread, so the calls never panic there, with a current-thread
//! runtime either. A worker's operations call them from plain threads.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::error::Error;

/// How long one remote call (a `HEAD`, a ranged `GET`, a whole listing) may take
/// before it fails, unless [`set_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The block a [`RangeReader`] fetches at a time, unless
/// [`RangeReader::with_block_size`] says otherwise: 4 MiB.
pub const DEFAULT_BLOCK_SIZE: u64 = 4 << 20;

/// How many blocks a [`RangeReader`] keeps.
const CACHED_BLOCKS: usize = 2;

/// The characters that make a path a glob pattern.
const GLOB_CHARACTERS: [char; 3] = ['*', '?', '['];

/// Whether `path` names remote data (`s3://`, `http://` or `https://`) rather than a
/// local file.
///
/// ```
/// use cairn_client::remote::is_remote;
/// assert!(is_remote("s3://bucket/a.csv"));
/// assert!(is_remote("https://example.com/a.parquet"));
/// assert!(!is_remote("/data/a.csv"));
/// assert!(!is_remote("data/s3://a.csv"));
/// ```
pub fn is_remote(path: &str) -> bool {
    ["s3://", "http://", "https://"]
        .iter()
        .any(|scheme| path.starts_with(scheme))
}

/// What kind of failure a [`RemoteError`] is.
///
/// ```
/// use cairn_client::remote::{RemoteError, RemoteErrorKind};
/// let error = RemoteError::new("s3://b/k", RemoteErrorKind::NotFound, "no such key");
/// assert_eq!(error.kind(), RemoteErrorKind::NotFound);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// The URL or pattern is malformed, or asks for something the scheme cannot do
    /// (a glob over http), or the configuration is wrong.
    Invalid,
    /// The object (or bucket) does not exist, or a pattern matched nothing.
    NotFound,
    /// The call did not complete within the timeout.
    TimedOut,
    /// The store refused or failed (permissions, network, server error).
    Failed,
}

/// A remote call failed; the message names the URL.
///
/// ```
/// use cairn_client::remote::{RemoteError, RemoteErrorKind};
/// let error = RemoteError::new("s3://b/k.csv", RemoteErrorKind::NotFound, "not found");
/// assert_eq!(error.to_string(), "s3://b/k.csv: not found");
/// assert_eq!(error.reason(), "not found");
/// let client_error: cairn_client::Error = error.into();
/// assert!(matches!(client_error, cairn_client::Error::NotFound { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct RemoteError {
    url: String,
    kind: RemoteErrorKind,
    reason: String,
}

impl RemoteError {
    /// An error about `url`.
    ///
    /// ```
    /// use cairn_client::remote::{RemoteError, RemoteErrorKind};
    /// let error = RemoteError::new("https://h/x", RemoteErrorKind::Failed, "503");
    /// assert_eq!(error.url(), "https://h/x");
    /// ```
    pub fn new(url: impl Into<String>, kind: RemoteErrorKind, reason: impl Into<String>) -> RemoteError {
        RemoteError {
            url: url.into(),
            kind,
            reason: reason.into(),
        }
    }

    /// The URL or pattern the call was about.
    ///
    /// ```
    /// use cairn_client::remote::{RemoteError, RemoteErrorKind};
    /// assert_eq!(RemoteError::new("s3://b/k", RemoteErrorKind::Invalid, "x").url(), "s3://b/k");
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What kind of failure.
    ///
    /// ```
    /// use cairn_client::remote::{RemoteError, RemoteErrorKind};
    /// assert_eq!(RemoteError::new("s3://b/k", RemoteErrorKind::TimedOut, "x").kind(), RemoteErrorKind::TimedOut);
    /// ```
    pub fn kind(&self) -> RemoteErrorKind {
        self.kind
    }

    /// Why, without the URL.
    ///
    /// ```
    /// use cairn_client::remote::{RemoteError, RemoteErrorKind};
    /// assert_eq!(RemoteError::new("s3://b/k", RemoteErrorKind::Failed, "denied").reason(), "denied");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The error as an [`std::io::Error`] of the matching kind, carrying the reason
    /// only (for callers that name the URL themselves).
    ///
    /// ```
    /// use cairn_client::remote::{RemoteError, RemoteErrorKind};
    /// let io = RemoteError::new("s3://b/k", RemoteErrorKind::NotFound, "gone").to_io_error();
    /// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    /// assert_eq!(io.to_string(), "gone");
    /// ```
    pub fn to_io_error(&self) -> std::io::Error {
        std::io::Error::new(io_kind(self.kind), self.reason.clone())
    }
}

fn io_kind(kind: RemoteErrorKind) -> std::io::ErrorKind {
    match kind {
        RemoteErrorKind::Invalid => std::io::ErrorKind::InvalidInput,
        RemoteErrorKind::NotFound => std::io::ErrorKind::NotFound,
        RemoteErrorKind::TimedOut => std::io::ErrorKind::TimedOut,
        RemoteErrorKind::Failed => std::io::ErrorKind::Other,
    }
}

impl From<RemoteError> for std::io::Error {
    /// The whole error (naming the URL), for readers that pass it through.
    fn from(error: RemoteError) -> std::io::Error {
        std::io::Error::new(io_kind(error.kind), error)
    }
}

impl From<RemoteError> for Error {
    fn from(error: RemoteError) -> Error {
        let message = error.to_string();
        match error.kind {
            RemoteErrorKind::Invalid => Error::InvalidArgument { message },
            RemoteErrorKind::NotFound => Error::NotFound { message },
            RemoteErrorKind::TimedOut | RemoteErrorKind::Failed => Error::Unavailable { message },
        }
    }
}

/// An [`object_store`] error about `url`, classified.
fn store_error(url: &str, error: object_store::Error) -> RemoteError {
    let kind = match &error {
        object_store::Error::NotFound { .. } => RemoteErrorKind::NotFound,
        object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => RemoteErrorKind::Invalid,
        _ => RemoteErrorKind::Failed,
    };
    let reason = match kind {
        RemoteErrorKind::NotFound => format!("not found ({error})"),
        _ => error.to_string(),
    };
    RemoteError::new(url, kind, reason)
}

// ---------------------------------------------------------------------------------
// Configuration and the store cache.

/// Explicit S3 options ([`configure_s3`]), applied over the environment.
static S3_OPTIONS: RwLock<Vec<(AmazonS3ConfigKey, String)>> = RwLock::new(Vec::new());
/// Stores by base (`s3://bucket`, `https://host:port`): those opened, and those
/// registered.
static STORES: OnceLock<Mutex<HashMap<String, CachedStore>>> = OnceLock::new();
/// The timeout of every call, in milliseconds.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64);

#[derive(Clone)]
struct CachedStore {
    store: Arc<dyn ObjectStore>,
    /// Registered with [`register_store`]: kept when the S3 options change.
    registered: bool,
}

fn stores() -> std::sync::MutexGuard<'static, HashMap<String, CachedStore>> {
    STORES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Gives the S3 stores of this process explicit options, by the names of their
/// environment variables (case does not matter: `AWS_ENDPOINT_URL`, `aws_region`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …; any key
/// [`AmazonS3ConfigKey`] parses). They apply over the environment and replace the
/// options given before; buckets opened already are opened again on their next use.
/// An unknown key is an error and changes nothing.
///
/// ```
/// use cairn_client::remote::configure_s3;
/// configure_s3([
///     ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
///     ("AWS_ACCESS_KEY_ID", "testing"),
///     ("AWS_SECRET_ACCESS_KEY", "testing"),
/// ])?;
/// assert!(configure_s3([("AWS_NO_SUCH_OPTION", "1")]).is_err());
/// # Ok::<(), cairn_client::Error>(())
/// ```
pub fn configure_s3<K: AsRef<str>, V: Into<String>>(options: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
    let mut parsed = Vec::new();
    for (key, value) in options {
        let name = key.as_ref().to_ascii_lowercase();
        let config_key = AmazonS3ConfigKey::from_str(&name).map_err(|error| Error::InvalidArgument {
            message: format!("unknown S3 option {:?}: {error}", key.as_ref()),
        })?;
        parsed.push((config_key, value.into()));
    }
    *S3_OPTIONS.write().unwrap_or_else(PoisonError::into_inner) = parsed;
    stores().retain(|base, cached| cached.registered || !base.starts_with("s3://"));
    Ok(())
}

/// Sets the timeout of every remote call from now on (default [`DEFAULT_TIMEOUT`]).
///
/// ```
/// use std::time::Duration;
/// cairn_client::remote::set_timeout(Duration::from_secs(30));
/// assert_eq!(cairn_client::remote::timeout(), Duration::from_secs(30));
/// ```
pub fn set_timeout(timeout: Duration) {
    TIMEOUT_MS.store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// The timeout of every remote call.
///
/// ```
/// assert!(cairn_client::remote::timeout() > std::time::Duration::ZERO);
/// ```
pub fn timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed))
}

/// Serves the URLs under `base` (`s3://bucket` or `scheme://host[:port]`) from
/// `store` for the rest of the process: for tests, or for a store configured by hand.
///
/// ```
/// use std::sync::Arc;
/// use cairn_client::remote;
/// use object_store::memory::InMemory;
///
/// remote::register_store("s3://in-memory-docs", Arc::new(InMemory::new()))?;
/// let error = remote::size("s3://in-memory-docs/missing.csv").expect_err("an error");
/// assert_eq!(error.kind(), remote::RemoteErrorKind::NotFound);
/// # Ok::<(), remote::RemoteError>(())
/// ```
pub fn register_store(base: &str, store: Arc<dyn ObjectStore>) -> Result<(), RemoteError> {
    let parsed = ParsedUrl::parse(base)?;
    if !parsed.key.is_empty() {
        return Err(RemoteError::new(
            base,
            RemoteErrorKind::Invalid,
            "a store is registered for a bucket or host, without a path",
        ));
    }
    stores().insert(
        parsed.base,
        CachedStore {
            store,
            registered: true,
        },
    );
    Ok(())
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedUrl {
    /// `s3://bucket` or `https://host:port`: the store cache key.
    base: String,
    /// `Some(bucket)` for S3.
    bucket: Option<String>,
    /// The key or path after the base, without the leading `/` (may be empty).
    key: String,
}

impl ParsedUrl {
    fn parse(url: &str) -> Result<ParsedUrl, RemoteError> {
        let invalid = |reason: &str| RemoteError::new(url, RemoteErrorKind::Invalid, reason);
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| ["s3", "http", "https"].contains(scheme))
            .ok_or_else(|| invalid("not a remote URL: s3://bucket/key, https://host/path or http://host/path"))?;
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(invalid(if scheme == "s3" {
                "no bucket name"
            } else {
                "no host name"
            }));
        }
        if authority.contains(GLOB_CHARACTERS) {
            return Err(invalid("a pattern may not match bucket or host names"));
        }
        Ok(ParsedUrl {
            base: format!("{scheme}://{authority}"),
            bucket: (scheme == "s3").then(|| authority.to_string()),
            key: key.to_string(),
        })
    }

    /// The object path of `key` in its store.
    fn location(&self, url: &str) -> Result<Path, RemoteError> {
        let parsed = if self.bucket.is_some() {
            Path::parse(&self.key)
        } else {
            Path::from_url_path(&self.key)
        };
        parsed.map_err(|error| RemoteError::new(url, RemoteErrorKind::Invalid, format!("invalid object path: {error}")))
    }
}

/// The store serving `parsed` (opened and cached on first use).
fn store_of(url: &str, parsed: &ParsedUrl) -> Result<Arc<dyn ObjectStore>, RemoteError> {
    if let Some(cached) = stores().get(&parsed.base) {
        return Ok(cached.store.clone());
    }
    let built: Arc<dyn ObjectStore> = match &parsed.bucket {
        Some(bucket) => {
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (key, value) in S3_OPTIONS.read().unwrap_or_else(PoisonError::into_inner).iter() {
                builder = builder.with_config(*key, value);
            }
            if builder.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
                builder = builder.with_region("us-east-1");
            }
            if builder
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .is_some_and(|endpoint| endpoint.starts_with("http://"))
            {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.build().map_err(|error| store_error(url, error))?)
        }
        None => {
            let options = ClientOptions::new().with_allow_http(parsed.base.starts_with("http://"));
            let store = HttpBuilder::new()
                .with_url(&parsed.base)
                .with_client_options(options)
                .build()
                .map_err(|error| store_error(url, error))?;
            Arc::new(store)
        }
    };
    // Two threads may open the same store at once: the first one cached wins.
    let mut cache = stores();
    let cached = cache.entry(parsed.base.clone()).or_insert(CachedStore {
        store: built,
        registered: false,
    });
    Ok(cached.store.clone())
}

/// The store and object path of `url`.
///
/// ```
/// use std::sync::Arc;
/// use cairn_client::remote;
///
/// remote::register_store("s3://store-for-docs", Arc::new(object_store::memory::InMemory::new()))?;
/// let (_store, location) = remote::store_for("s3://store-for-docs/data/a.csv")?;
/// assert_eq!(location.as_ref(), "data/a.csv");
/// # Ok::<(), remote::RemoteError>(())
/// ```
pub fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), RemoteError> {
    let parsed = ParsedUrl::parse(url)?;
    let location = parsed.location(url)?;
    Ok((store_of(url, &parsed)?, location))
}

// ---------------------------------------------------------------------------------
// Blocking from any thread.

/// The process-wide runtime the calls run on.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cairn-remote")
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the remote I/O runtime: {error}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `future` (an `object_store` call about `url`) to completion with the
/// timeout, from any thread.
fn block_on<T: Send>(
    url: &str,
    what: &str,
    future: impl Future<Output = object_store::Result<T>> + Send,
) -> Result<T, RemoteError> {
    let runtime = runtime().map_err(|reason| RemoteError::new(url, RemoteErrorKind::Failed, reason))?;
    let limit = timeout();
    let run = move || runtime.block_on(async move { tokio::time::timeout(limit, future).await });
    let outcome = if tokio::runtime::Handle::try_current().is_ok() {
        // Inside a runtime, `block_on` would panic: wait from a helper thread.
        std::thread::scope(|scope| match scope.spawn(run).join() {
            Ok(outcome) => outcome,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    } else {
        run()
    };
    match outcome {
        Ok(result) => result.map_err(|error| store_error(url, error)),
        Err(_elapsed) => Err(RemoteError::new(
            url,
            RemoteErrorKind::TimedOut,
            format!("{what} did not complete within {limit:?}"),
        )),
    }
}

/// `HEAD`: the object's metadata.
fn head(url: &str, store: &Arc<dyn ObjectStore>, location: &Path) -> Result<ObjectMeta, RemoteError> {
    let options = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    block_on(
        url,
        "HEAD",
        async move { Ok(store.get_opts(location, options).await?.meta) },
    )
}

/// A ranged `GET` (an empty range fetches nothing).
fn fetch(url: &str, store: &Arc<dyn ObjectStore>, location: &Path, range: Range<u64>) -> Result<Bytes, RemoteError> {
    if range.start >= range.end {
        return Ok(Bytes::new());
    }
    let expected = range.end - range.start;
    let options = GetOptions {
        range: Some(GetRange::Bounded(range.clone())),
        ..GetOptions::default()
    };
    let bytes = block_on(url, "GET", async move {
        store.get_opts(location, options).await?.bytes().await
    })?;
    if bytes.len() as u64 != expected {
        return Err(RemoteError::new(
            url,
            RemoteErrorKind::Failed,
            format!(
                "asked for bytes {}..{} ({expected} bytes), got {} bytes: the object changed or is shorter",
                range.start,
                range.end,
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------
// The calls.

/// The size of the object at `url`, in bytes (a `HEAD`).
///
/// ```no_run
/// let size = cairn_client::remote::size("s3://bucket/data/a.csv")?;
/// # Ok::<(), cairn_client::remote::RemoteError>(())
/// ```
pub fn size(url: &str) -> Result<u64, RemoteError> {
    Ok(RemoteObject::open(url)?.size())
}

/// Bytes `range` of the object at `url` (one ranged `GET`; the range must lie within
/// the object).
///
/// ```no_run
/// let header = cairn_client::remote::get_range("s3://bucket/data/a.csv", 0..1024)?;
/// # Ok::<(), cairn_client::remote::RemoteError>(())
/// ```
pub fn get_range(url: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
    let (store, location) = store_for(url)?;
    fetch(url, &store, &location, range)
}

/// The objects matching `pattern` with their sizes, sorted by URL.
///
/// - `s3://bucket/prefix*glob`: lists the keys under the longest literal prefix (to
///   its last `/`) and keeps those matching the glob (`*`, `?`, `[…]`; `*` does not
///   cross `/`). A pattern without glob characters names one object.
/// - `https://…`, `http://…`: no listing; the URL names one object (a glob character
///   is an error).
///
/// Nothing matching is a [`RemoteErrorKind::NotFound`] error naming the pattern.
///
/// ```no_run
/// for (url, size) in cairn_client::remote::list("s3://bucket/2024/*/accounts.*.csv")? {
///     println!("{url}: {size} bytes");
/// }
/// # Ok::<(), cairn_client::remote::RemoteError>(())
/// ```
pub fn list(pattern: &str) -> Result<Vec<(String, u64)>, RemoteError> {
    let parsed = ParsedUrl::parse(pattern)?;
    let Some(glob_at) = parsed.key.find(GLOB_CHARACTERS) else {
        return Ok(vec![(pattern.to_string(), size(pattern)?)]);
    };
    let Some(bucket) = &parsed.bucket else {
        return Err(RemoteError::new(
            pattern,
            RemoteErrorKind::Invalid,
            "http(s) URLs cannot be listed: name one object (no *, ? or [)",
        ));
    };
    let matcher = glob::Pattern::new(&parsed.key)
        .map_err(|error| RemoteError::new(pattern, RemoteErrorKind::Invalid, format!("invalid pattern: {error}")))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let directory = match parsed.key[..glob_at].rfind('/') {
        Some(slash) => Some(Path::parse(&parsed.key[..slash]).map_err(|error| {
            RemoteError::new(pattern, RemoteErrorKind::Invalid, format!("invalid prefix: {error}"))
        })?),
        None => None,
    };
    let store = store_of(pattern, &parsed)?;
    let objects: Vec<ObjectMeta> = block_on(pattern, "LIST", async {
        store.list(directory.as_ref()).try_collect().await
    })?;
    let mut matches: Vec<(String, u64)> = objects
        .into_iter()
        .filter(|object| matcher.matches_with(object.location.as_ref(), options))
        .map(|object| (format!("s3://{bucket}/{}", object.location), object.size))
        .collect();
    if matches.is_empty() {
        return Err(RemoteError::new(
            pattern,
            RemoteErrorKind::NotFound,
            "no object matches",
        ));
    }
    matches.sort();
    Ok(matches)
}

// ---------------------------------------------------------------------------------
// Objects and range readers.

/// One remote object of known size: ranged reads, counted.
///
/// Clones (and the [`RangeReader`]s made from it) share the count of bytes fetched.
///
/// ```
/// use std::sync::Arc;
/// use cairn_client::remote::RemoteObject;
/// use object_store::{memory::InMemory, path::Path, ObjectStore, ObjectStoreExt};
///
/// let store = Arc::new(InMemory::new());
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// store.put(&Path::from("a.txt"), "hello, world".into()).await.unwrap();
/// # });
/// let object = RemoteObject::with_store(store, Path::from("a.txt"), "mem://a.txt")?;
/// assert_eq!(object.size(), 12);
/// assert_eq!(&object.get_range(7..12)?[..], b"world");
/// assert_eq!(object.bytes_fetched(), 5);
/// # Ok::<(), cairn_client::remote::RemoteError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RemoteObject {
    store: Arc<dyn ObjectStore>,
    location: Path,
    url: String,
    size: u64,
    fetched: Arc<AtomicU64>,
}

impl RemoteObject {
    /// Opens the object at `url` (a `HEAD` for its size).
    ///
    /// ```no_run
    /// let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.parquet")?;
    /// println!("{} bytes", object.size());
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn open(url: &str) -> Result<RemoteObject, RemoteError> {
        let (store, location) = store_for(url)?;
        RemoteObject::with_store(store, location, url)
    }

    /// Opens `location` in `store` (a `HEAD` for its size); `url` names it in errors.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_client::remote::{RemoteErrorKind, RemoteObject};
    /// use object_store::{memory::InMemory, path::Path};
    ///
    /// let error = RemoteObject::with_store(Arc::new(InMemory::new()), Path::from("x"), "mem://x").expect_err("an error");
    /// assert_eq!(error.kind(), RemoteErrorKind::NotFound);
    /// assert!(error.to_string().starts_with("mem://x: not found"));
    /// ```
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        location: Path,
        url: impl Into<String>,
    ) -> Result<RemoteObject, RemoteError> {
        let url = url.into();
        let meta = head(&url, &store, &location)?;
        Ok(RemoteObject {
            store,
            location,
            url,
            size: meta.size,
            fetched: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The URL.
    ///
    /// ```no_run
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.csv")?;
    /// assert_eq!(object.url(), "s3://bucket/a.csv");
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The size in bytes, as the `HEAD` said.
    ///
    /// ```no_run
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.csv")?;
    /// println!("{}", object.size());
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes `range` (one ranged `GET`; empty ranges fetch nothing). A range past the
    /// end is an error.
    ///
    /// ```no_run
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.csv")?;
    /// let tail = object.get_range(object.size().saturating_sub(8)..object.size())?;
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn get_range(&self, range: Range<u64>) -> Result<Bytes, RemoteError> {
        if range.end > self.size || range.start > range.end {
            return Err(RemoteError::new(
                &self.url,
                RemoteErrorKind::Invalid,
                format!(
                    "bytes {}..{} are outside the object ({} bytes)",
                    range.start, range.end, self.size
                ),
            ));
        }
        let bytes = fetch(&self.url, &self.store, &self.location, range)?;
        self.fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// The bytes fetched so far through this object, its clones and its readers.
    ///
    /// ```no_run
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.csv")?;
    /// assert_eq!(object.bytes_fetched(), 0);
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// A [`RangeReader`] at the start of the object, with [`DEFAULT_BLOCK_SIZE`].
    ///
    /// ```no_run
    /// use std::io::Read;
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.csv")?;
    /// let mut first = [0_u8; 16];
    /// object.reader().read_exact(&mut first)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reader(&self) -> RangeReader {
        RangeReader::new(self.clone())
    }
}

/// `Read + Seek` over a remote object: aligned blocks fetched on demand, the last
/// two kept; a read at least a block long that no kept block covers is fetched
/// as one range of exactly its length. So a reader that seeks to a footer and then
/// to one record batch fetches only those parts of the object.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom};
/// use std::sync::Arc;
/// use cairn_client::remote::RemoteObject;
/// use object_store::{memory::InMemory, path::Path, ObjectStoreExt};
///
/// let store = Arc::new(InMemory::new());
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// store.put(&Path::from("big"), vec![7_u8; 1 << 20].into()).await.unwrap();
/// # });
/// let object = RemoteObject::with_store(store, Path::from("big"), "mem://big")?;
/// let mut reader = object.reader().with_block_size(4096);
/// reader.seek(SeekFrom::End(-10))?;
/// let mut footer = Vec::new();
/// reader.read_to_end(&mut footer)?;
/// assert_eq!(footer, vec![7_u8; 10]);
/// assert_eq!(reader.bytes_fetched(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RangeReader {
    object: RemoteObject,
    position: u64,
    block_size: u64,
    /// `(block start, bytes)`, the most recent last.
    cache: VecDeque<(u64, Bytes)>,
}

impl RangeReader {
    /// A reader at the start of `object`, with [`DEFAULT_BLOCK_SIZE`].
    ///
    /// ```no_run
    /// # let object = cairn_client::remote::RemoteObject::open("s3://bucket/a.arrow")?;
    /// let reader = cairn_client::remote::RangeReader::new(object);
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn new(object: RemoteObject) -> RangeReader {
        RangeReader {
            object,
            position: 0,
            block_size: DEFAULT_BLOCK_SIZE,
            cache: VecDeque::with_capacity(CACHED_BLOCKS),
        }
    }

    /// Opens the object at `url` and reads it from the start.
    ///
    /// ```no_run
    /// let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?;
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn open(url: &str) -> Result<RangeReader, RemoteError> {
        Ok(RangeReader::new(RemoteObject::open(url)?))
    }

    /// The same reader fetching blocks of `bytes` (at least 1).
    ///
    /// ```no_run
    /// let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?.with_block_size(1 << 20);
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn with_block_size(mut self, bytes: u64) -> RangeReader {
        self.block_size = bytes.max(1);
        self.cache.clear();
        self
    }

    /// The object read.
    ///
    /// ```no_run
    /// # let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?;
    /// println!("{}", reader.object().url());
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn object(&self) -> &RemoteObject {
        &self.object
    }

    /// The object's size in bytes.
    ///
    /// ```no_run
    /// # let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?;
    /// println!("{} bytes", reader.len());
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.object.size
    }

    /// Whether the object is empty.
    ///
    /// ```no_run
    /// # let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?;
    /// assert!(!reader.is_empty());
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.object.size == 0
    }

    /// The bytes fetched so far through this reader's object (its clones and other
    /// readers included: [`RemoteObject::bytes_fetched`]).
    ///
    /// ```no_run
    /// # let reader = cairn_client::remote::RangeReader::open("s3://bucket/a.arrow")?;
    /// assert_eq!(reader.bytes_fetched(), 0);
    /// # Ok::<(), cairn_client::remote::RemoteError>(())
    /// ```
    pub fn bytes_fetched(&self) -> u64 {
        self.object.bytes_fetched()
    }

    /// The kept block covering `position`, if any.
    fn cached(&self, position: u64) -> Option<&(u64, Bytes)> {
        self.cache
            .iter()
            .find(|(start, bytes)| *start <= position && position < *start + bytes.len() as u64)
    }
}

impl Read for RangeReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let size = self.object.size;
        if buffer.is_empty() || self.position >= size {
            return Ok(0);
        }
        let position = self.position;
        if self.cached(position).is_none() {
            if buffer.len() as u64 >= self.block_size {
                // A long read: fetch exactly it, keep nothing.
                let end = (position + buffer.len() as u64).min(size);
                let bytes = self.object.get_range(position..end)?;
                buffer[..bytes.len()].copy_from_slice(&bytes);
                self.position = end;
                return Ok(bytes.len());
            }
            let start = position - position % self.block_size;
            let end = (start + self.block_size).min(size);
            let bytes = self.object.get_range(start..end)?;
            if self.cache.len() == CACHED_BLOCKS {
                self.cache.pop_front();
            }
            self.cache.push_back((start, bytes));
        }
        let Some((start, bytes)) = self.cached(position) else {
            return Err(std::io::Error::other(format!(
                "{}: a fetched block went missing",
                self.object.url
            )));
        };
        let offset = (position - start) as usize;
        let count = buffer.len().min(bytes.len() - offset);
        buffer[..count].copy_from_slice(&bytes[offset..offset + count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, target: SeekFrom) -> std::io::Result<u64> {
        let (base, offset) = match target {
            SeekFrom::Start(position) => {
                self.position = position;
                return Ok(position);
            }
            SeekFrom::End(offset) => (self.object.size, offset),
            SeekFrom::Current(offset) => (self.position, offset),
        };
        match base.checked_add_signed(offset) {
            Some(position) => {
                self.position = position;
                Ok(position)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: seek to before the start of the object", self.object.url),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------
// Counting.

/// An [`ObjectStore`] that passes every call to another and counts the bytes and
/// requests of its `GET`s (`HEAD`s count as requests only): to measure what a
/// ranged read fetched, in tests and benchmarks.
///
/// ```
/// use std::sync::Arc;
/// use cairn_client::remote::{CountingStore, RemoteObject};
/// use object_store::{memory::InMemory, path::Path, ObjectStoreExt};
///
/// let counting = Arc::new(CountingStore::new(Arc::new(InMemory::new())));
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// counting.put(&Path::from("a"), vec![0_u8; 1000].into()).await.unwrap();
/// # });
/// let object = RemoteObject::with_store(counting.clone(), Path::from("a"), "mem://a")?;
/// object.get_range(10..110)?;
/// assert_eq!(counting.bytes_fetched(), 100);
/// assert_eq!(counting.requests(), 2); // the HEAD and the GET
/// # Ok::<(), cairn_client::remote::RemoteError>(())
/// ```
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    bytes: AtomicU64,
    requests: AtomicU64,
}

impl CountingStore {
    /// Counts the calls made to `inner`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let counting = cairn_client::remote::CountingStore::new(Arc::new(object_store::memory::InMemory::new()));
    /// assert_eq!(counting.bytes_fetched(), 0);
    /// ```
    pub fn new(inner: Arc<dyn ObjectStore>) -> CountingStore {
        CountingStore {
            inner,
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// The bytes returned by `GET`s so far.
    ///
    /// ```
    /// # let counting = cairn_client::remote::CountingStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    /// assert_eq!(counting.bytes_fetched(), 0);
    /// ```
    pub fn bytes_fetched(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The `GET` and `HEAD` requests so far.
    ///
    /// ```
    /// # let counting = cairn_client::remote::CountingStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    /// assert_eq!(counting.requests(), 0);
    /// ```
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sets both counts back to 0.
    ///
    /// ```
    /// # let counting = cairn_client::remote::CountingStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    /// counting.reset();
    /// ```
    pub fn reset(&self) {
        self.bytes.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "CountingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !head {
            self.bytes
                .fetch_add(result.range.end - result.range.start, Ordering::Relaxed);
        }
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    /// An in-memory store behind a counter, registered under `base`, holding `objects`.
    fn memory_store(base: &str, objects: &[(&str, Vec<u8>)]) -> Arc<CountingStore> {
        let inner = Arc::new(InMemory::new());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            for (key, bytes) in objects {
                inner.put(&Path::from(*key), bytes.clone().into()).await.expect("put");
            }
        });
        let counting = Arc::new(CountingStore::new(inner));
        register_store(base, counting.clone()).expect("register");
        counting
    }

    #[test]
    fn urls_are_taken_apart() {
        let parsed = ParsedUrl::parse("s3://bucket/a/b.csv").expect("s3");
        assert_eq!(parsed.base, "s3://bucket");
        assert_eq!(parsed.bucket.as_deref(), Some("bucket"));
        assert_eq!(parsed.key, "a/b.csv");
        let parsed = ParsedUrl::parse("https://host:8443/x/y.parquet").expect("https");
        assert_eq!(parsed.base, "https://host:8443");
        assert_eq!(parsed.bucket, None);
        assert_eq!(parsed.key, "x/y.parquet");
        for bad in ["s3:///key", "ftp://host/x", "/local/file", "s3://buck*/x"] {
            let error = ParsedUrl::parse(bad).expect_err(bad);
            assert_eq!(error.kind(), RemoteErrorKind::Invalid, "{bad}");
            assert!(error.to_string().starts_with(bad), "{error}");
        }
    }

    /// A listing keeps the keys matching the glob under the literal prefix, sorted,
    /// with their sizes; `*` does not cross `/`; nothing matching names the pattern.
    #[test]
    fn listing_matches_the_glob_under_the_literal_prefix() {
        memory_store(
            "s3://list-test",
            &[
                ("data/accounts.2.csv", vec![b'x'; 20]),
                ("data/accounts.1.csv", vec![b'x'; 10]),
                ("data/accounts.csv.bak", vec![b'x'; 1]),
                ("data/sub/accounts.3.csv", vec![b'x'; 1]),
                ("other/accounts.4.csv", vec![b'x'; 1]),
            ],
        );
        assert_eq!(
            list("s3://list-test/data/accounts.*.csv").expect("list"),
            [
                ("s3://list-test/data/accounts.1.csv".to_string(), 10),
                ("s3://list-test/data/accounts.2.csv".to_string(), 20),
            ]
        );
        assert_eq!(list("s3://list-test/*/accounts.[4].csv").expect("list").len(), 1);
        assert_eq!(list("s3://list-test/data/**/*.csv").expect("recursive").len(), 3);
        assert_eq!(
            list("s3://list-test/data/accounts.1.csv").expect("one"),
            [("s3://list-test/data/accounts.1.csv".to_string(), 10)]
        );
        let error = list("s3://list-test/data/*.parquet").expect_err("nothing");
        assert_eq!(error.kind(), RemoteErrorKind::NotFound);
        assert_eq!(error.to_string(), "s3://list-test/data/*.parquet: no object matches");
        let error = list("s3://list-test/data/missing.csv").expect_err("missing");
        assert_eq!(error.kind(), RemoteErrorKind::NotFound);
        assert!(
            error
                .to_string()
                .starts_with("s3://list-test/data/missing.csv: not found"),
            "{error}"
        );
        let error = list("https://example.invalid/data/*.csv").expect_err("no http listing");
        assert_eq!(error.kind(), RemoteErrorKind::Invalid);
        assert!(error.to_string().contains("cannot be listed"), "{error}");
    }

    /// The calls work from a plain thread, from inside a multi-thread runtime and from
    /// inside a current-thread runtime (where `Handle::block_on` would panic).
    #[test]
    fn calls_work_from_any_thread() {
        memory_store("s3://thread-test", &[("k", b"0123456789".to_vec())]);
        assert_eq!(size("s3://thread-test/k").expect("plain thread"), 10);
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let bytes = current.block_on(async { get_range("s3://thread-test/k", 2..5) });
        assert_eq!(&bytes.expect("current-thread runtime")[..], b"234");
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listed = multi.block_on(async { tokio::spawn(async { list("s3://thread-test/*") }).await });
        assert_eq!(listed.expect("joined").expect("multi-thread runtime").len(), 1);
    }

    /// Errors name the URL; a range outside the object is refused before any request.
    #[test]
    fn errors_name_the_url() {
        let counting = memory_store("s3://error-test", &[("k", b"abc".to_vec())]);
        let object = RemoteObject::open("s3://error-test/k").expect("open");
        let error = object.get_range(1..10).expect_err("past the end");
        assert_eq!(
            error.to_string(),
            "s3://error-test/k: bytes 1..10 are outside the object (3 bytes)"
        );
        assert_eq!(counting.bytes_fetched(), 0);
        let error = get_range("s3://error-test/nope", 0..1).expect_err("missing");
        assert!(
            error.to_string().starts_with("s3://error-test/nope: not found"),
            "{error}"
        );
        let client_error: Error = error.into();
        assert!(matches!(client_error, Error::NotFound { .. }));
    }

    /// A range reader that seeks to the end and then to one place fetches only the
    /// blocks there; long reads are fetched exactly; reads agree with the bytes.
    #[test]
    fn range_reader_fetches_only_the_blocks_it_reads() {
        let content: Vec<u8> = (0..1_000_000_u32).map(|index| (index % 251) as u8).collect();
        let counting = memory_store("s3://reader-test", &[("big", content.clone())]);
        let mut reader = RangeReader::open("s3://reader-test/big")
            .expect("open")
            .with_block_size(4096);
        assert_eq!(reader.len(), 1_000_000);

        reader.seek(SeekFrom::End(-8)).expect("seek");
        let mut footer = [0_u8; 8];
        reader.read_exact(&mut footer).expect("footer");
        assert_eq!(footer[..], content[999_992..]);
        reader.seek(SeekFrom::Start(500_000)).expect("seek");
        let mut middle = vec![0_u8; 100];
        reader.read_exact(&mut middle).expect("middle");
        assert_eq!(middle[..], content[500_000..500_100]);
        // Again, from the kept blocks.
        reader.seek(SeekFrom::End(-8)).expect("seek");
        reader.read_exact(&mut footer).expect("footer again");
        // The last block is 1_000_000 % 4096 = 576 bytes long.
        assert_eq!(reader.bytes_fetched(), 576 + 4096);
        assert_eq!(counting.bytes_fetched(), 576 + 4096);

        // A read longer than a block: exactly its bytes.
        reader.seek(SeekFrom::Start(10_000)).expect("seek");
        let mut long = vec![0_u8; 50_000];
        reader.read_exact(&mut long).expect("long");
        assert_eq!(long[..], content[10_000..60_000]);
        assert_eq!(reader.bytes_fetched(), 576 + 4096 + 50_000);

        // Everything, in odd-sized reads, equals the content.
        let mut all = Vec::new();
        reader.seek(SeekFrom::Start(0)).expect("rewind");
        let mut piece = [0_u8; 1000];
        loop {
            let count = reader.read(&mut piece).expect("read");
            if count == 0 {
                break;
            }
            all.extend_from_slice(&piece[..count]);
        }
        assert_eq!(all, content);
        assert!(reader.seek(SeekFrom::Current(-2_000_000)).is_err());
    }

    #[test]
    fn configuration_refuses_unknown_keys_and_keeps_registered_stores() {
        memory_store("s3://config-test", &[("k", b"x".to_vec())]);
        assert!(configure_s3([("AWS_NOT_AN_OPTION", "x")]).is_err());
        configure_s3([("AWS_REGION", "eu-west-1")]).expect("configure");
        assert_eq!(size("s3://config-test/k").expect("registered store kept"), 1);
        configure_s3(Vec::<(String, String)>::new()).expect("reset");
    }
}
