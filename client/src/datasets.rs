//! The mapping interface over published datasets, as Dask's `client.datasets`.

use crate::client::Client;
use crate::error::Error;
use crate::value::{PublishedDataset, Value};

/// A mapping view of the cluster's published datasets. Every call goes to the
/// cluster: the view holds no state of its own.
///
/// ```no_run
/// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
/// let datasets = client.datasets();
/// datasets.insert("negative_accounts", "Alice,-100").await?;
/// for name in datasets.keys().await? {
///     println!("{name}");
/// }
/// datasets.remove("negative_accounts").await?;
/// # Ok(()) }
/// ```
pub struct Datasets<'a> {
    /// The client the calls go through.
    client: &'a Client,
}

impl<'a> Datasets<'a> {
    pub(crate) fn new(client: &'a Client) -> Datasets<'a> {
        Datasets { client }
    }

    /// `datasets[name] = value`: publishes; fails with [`Error::AlreadyExists`] if the
    /// name exists, as Dask does.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.datasets().insert("k", "v").await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert(&self, name: &str, value: impl Into<Value>) -> Result<u64, Error> {
        self.client.publish_dataset(name, value).await
    }

    /// `datasets[name]`: the dataset, or [`Error::NotFound`].
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let dataset = client.datasets().get("k").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, name: &str) -> Result<PublishedDataset, Error> {
        self.client.get_dataset(name).await
    }

    /// `del datasets[name]`: unpublishes, or [`Error::NotFound`].
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.datasets().remove("k").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, name: &str) -> Result<u64, Error> {
        self.client.unpublish_dataset(name).await
    }

    /// `name in datasets`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let present = client.datasets().contains("k").await?;
    /// # Ok(()) }
    /// ```
    pub async fn contains(&self, name: &str) -> Result<bool, Error> {
        match self.client.dataset_info(name).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `list(datasets)`: names in publish order.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let names = client.datasets().keys().await?;
    /// # Ok(()) }
    /// ```
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        self.client.list_datasets().await
    }

    /// `len(datasets)`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let count = client.datasets().len().await?;
    /// # Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(self.keys().await?.len())
    }

    /// Whether no dataset is published.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let empty = client.datasets().is_empty().await?;
    /// # Ok(()) }
    /// ```
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.keys().await?.is_empty())
    }
}
