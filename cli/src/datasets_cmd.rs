//! `cairn datasets list | info | get | put | rm`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use cairn_client::{Client, Collection, Content, Dataset, PublishOptions, PublishedDataset, Value};
use futures::TryStreamExt;
use serde_json::json;

use crate::args::{DatasetsArgs, DatasetsCommand};
use crate::discovery::connect;
use crate::tabular::{format_head, format_schema, open_inputs, progress_bar, TableWriter};

/// Rows `get` prints from a collection on a terminal when `--head` is not given.
const DEFAULT_HEAD_ROWS: usize = 20;

fn format_size(bytes: u64) -> String {
    cairn_worker::format_bytes(bytes)
}

/// `info`: what a dataset is, without reading its data.
async fn show_info(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let info = client.dataset_info(name).await?;
    if json {
        let collection = info.collection.as_ref().map(|collection| {
            json!({
                "schema": collection.schema.fields().iter().map(|field| json!({
                    "name": field.name(), "type": field.data_type().to_string(), "nullable": field.is_nullable(),
                })).collect::<Vec<_>>(),
                "rows": collection.rows, "bytes": collection.bytes, "replicas": collection.replicas,
                "grid": cairn_client::grid::GridMeta::of_schema(&collection.schema)
                    .and_then(Result::ok)
                    .map(|grid| grid.summary(collection.rows as usize)),
                "chunks": collection.chunks.iter().map(|chunk| json!({
                    "key": chunk.key, "rows": chunk.rows, "bytes": chunk.bytes,
                    "checksum": format!("{:08x}", chunk.checksum),
                    "locations": chunk.locations.iter().map(|location| json!({
                        "worker_id": location.worker_id, "addr": location.addr, "live": location.live,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        });
        println!(
            "{}",
            json!({
                "name": info.name, "kind": info.kind, "content_type": info.content_type,
                "bytes": info.bytes, "attributes": info.attributes, "publisher": info.publisher,
                "published_at_index": info.published_at_index, "collection": collection,
                "availability": info.availability,
            })
        );
        return Ok(());
    }
    println!("name:         {}", info.name);
    println!("kind:         {}", info.kind);
    println!("content type: {}", info.content_type);
    println!("bytes:        {} ({})", info.bytes, format_size(info.bytes));
    println!("publisher:    {}", info.publisher);
    println!("published at: log index {}", info.published_at_index);
    for (key, value) in &info.attributes {
        println!("attribute:    {key}={value}");
    }
    if let Some(collection) = &info.collection {
        println!("rows:         {}", collection.rows);
        println!("chunks:       {}", collection.chunks.len());
        println!("replicas:     {}", collection.replicas);
        if let Some(availability) = &info.availability {
            let note = match availability.as_str() {
                "available" => "every chunk has its replicas on live workers",
                "degraded" => "every chunk has a live copy, some fewer than its replicas (being repaired)",
                "recovering" => "some chunk has no live copy; it is being recomputed from lineage",
                "lost" => "some chunk has no live copy and no lineage: the dataset cannot be read",
                _ => "",
            };
            println!("availability: {availability} ({note})");
        }
        if let Some(Ok(grid)) = cairn_client::grid::GridMeta::of_schema(&collection.schema) {
            println!("grid:");
            for (key, value) in grid.summary(collection.rows as usize) {
                println!("  {key}: {value}");
            }
        }
        println!("schema:");
        for line in format_schema(&collection.schema).lines() {
            println!("  {line}");
        }
        println!("chunks (key, rows, bytes, crc32c, workers):");
        for chunk in &collection.chunks {
            let locations: Vec<String> = chunk
                .locations
                .iter()
                .map(|location| {
                    let state = if location.live { "" } else { " (gone)" };
                    format!("{} at {}{state}", location.worker_id, location.addr)
                })
                .collect();
            println!(
                "  {}  {}  {}  {:08x}  {}",
                chunk.key,
                chunk.rows,
                format_size(chunk.bytes),
                chunk.checksum,
                locations.join(", ")
            );
        }
    }
    Ok(())
}

/// `get` of an inline value.
fn show_value(dataset: &PublishedDataset, value: &Value, output: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if let Some(path) = output {
        std::fs::write(path, &value.data).with_context(|| format!("cannot write {}", path.display()))?;
    } else if json {
        println!(
            "{}",
            json!({
                "name": dataset.name, "content_type": value.content_type,
                "value": value.as_text(), "bytes": value.data.len(),
                "attributes": dataset.attributes, "publisher": dataset.publisher,
                "published_at_index": dataset.published_at_index,
            })
        );
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&value.data)?;
        if value.as_text().is_some_and(|text| !text.ends_with('\n')) {
            stdout.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// `get` of a collection: to a file, or the first rows as a table.
/// A published view: computed afresh on the workers, then shown or written.
async fn get_view(
    name: &str,
    view: &cairn_client::LazyCollection,
    output: Option<&Path>,
    head: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let batches = view.compute().await?;
    let rows: usize = batches.iter().map(|batch| batch.num_rows()).sum();
    let Some(path) = output else {
        let shown = head.unwrap_or(DEFAULT_HEAD_ROWS);
        if json {
            let mut buffer = Vec::new();
            let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
            let mut left = shown;
            for batch in &batches {
                let take = left.min(batch.num_rows());
                writer.write(&batch.slice(0, take))?;
                left -= take;
            }
            writer.finish()?;
            println!("{}", String::from_utf8_lossy(&buffer));
        } else {
            println!("{}", format_head(&batches, shown, rows as u64)?);
        }
        return Ok(());
    };
    let rows = if is_netcdf(path) {
        write_netcdf(path, batches).await?
    } else {
        let schema = batches
            .first()
            .map(|batch| batch.schema())
            .ok_or_else(|| anyhow::anyhow!("view '{name}' computed no partitions"))?;
        let mut writer = TableWriter::create(path, schema)?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?
    };
    if json {
        println!("{}", json!({"name": name, "output": path, "rows": rows}));
    } else {
        println!(
            "wrote {rows} rows of {name} (a view, computed now) to {}",
            path.display()
        );
    }
    Ok(())
}

/// Whether `--output` names a NetCDF file (`.nc`).
fn is_netcdf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("nc"))
}

/// Writes gridded batches as a NetCDF file (off the async threads); the rows written.
/// Batches that are not gridded are a clear error.
async fn write_netcdf(path: &Path, batches: Vec<arrow::array::RecordBatch>) -> anyhow::Result<u64> {
    if let Some(batch) = batches.first() {
        if cairn_client::grid::GridMeta::of_schema(batch.schema_ref()).is_none() {
            bail!(
                "{}: only gridded data (read with read_netcdf, or computed from it) can be written as NetCDF; \
                 use .csv, .parquet or .arrow for tables",
                path.display()
            );
        }
    }
    let rows = batches.iter().map(|batch| batch.num_rows() as u64).sum();
    let target = path.to_path_buf();
    tokio::task::spawn_blocking(move || cairn_client::netcdf_io::write(&target, &[batches])).await??;
    Ok(rows)
}

async fn get_collection(
    collection: &Collection,
    output: Option<&Path>,
    head: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let Some(path) = output else {
        let rows = head.unwrap_or(DEFAULT_HEAD_ROWS);
        let batches = collection.head(rows).await?;
        if json {
            let mut buffer = Vec::new();
            let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            println!("{}", String::from_utf8_lossy(&buffer));
        } else {
            println!("{}", format_head(&batches, rows, collection.num_rows())?);
        }
        return Ok(());
    };
    if is_netcdf(path) {
        let rows = write_netcdf(path, collection.collect().await?).await?;
        if json {
            println!("{}", json!({"name": collection.name(), "output": path, "rows": rows}));
        } else {
            println!(
                "wrote {rows} rows of {} to {} (NetCDF)",
                collection.name(),
                path.display()
            );
        }
        return Ok(());
    }
    let mut writer = TableWriter::create(path, collection.schema())?;
    let bar = progress_bar(collection.num_bytes(), "reading", !json);
    let mut stream = std::pin::pin!(collection.stream());
    let mut index = 0;
    while let Some(batch) = stream.try_next().await? {
        writer.write(&batch)?;
        bar.inc(collection.chunks().get(index).map_or(0, |chunk| chunk.bytes));
        index += 1;
    }
    bar.finish_and_clear();
    let rows = writer.finish()?;
    if json {
        println!("{}", json!({"name": collection.name(), "output": path, "rows": rows}));
    } else {
        println!("wrote {rows} rows of {} to {}", collection.name(), path.display());
    }
    Ok(())
}

/// `publish --file`: reads the files on a blocking thread, streams their batches
/// to the client, which chunks, uploads and publishes them.
#[allow(clippy::too_many_arguments)]
async fn publish_files(
    client: &Client,
    name: &str,
    files: &[PathBuf],
    replicas: u32,
    chunk_rows: usize,
    override_existing: bool,
    attributes: BTreeMap<String, String>,
    json: bool,
) -> anyhow::Result<()> {
    if replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    if chunk_rows == 0 {
        bail!("--chunk-rows must be at least 1");
    }
    let paths = files.to_vec();
    let reader = tokio::task::spawn_blocking(move || open_inputs(&paths, chunk_rows)).await??;
    let schema = reader.schema();
    let bar = progress_bar(reader.total_bytes(), "publishing", !json);
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    let progress = bar.clone();
    let reading_bar = bar.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        while let Some(batch) = reader.next() {
            reading_bar.set_position(reader.bytes_read());
            let failed = batch.is_err();
            if sender.blocking_send(batch).is_err() || failed {
                break;
            }
        }
    });
    let options = PublishOptions {
        replicas,
        chunk_rows,
        override_existing,
        attributes,
        on_progress: Some(Arc::new(move |done: cairn_client::UploadProgress| {
            progress.set_message(format!("{} rows in {} chunks", done.rows, done.chunks));
        })),
        ..Default::default()
    };
    let batches = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let published = client.publish_batches(name, schema, batches, options).await;
    bar.finish_and_clear();
    reading.await?;
    let published = published?;
    let (index, rows, chunks, bytes) = (published.log_index, published.rows, published.chunks, published.bytes);
    if json {
        println!(
            "{}",
            json!({"published": name, "log_index": index, "rows": rows, "chunks": chunks, "bytes": bytes, "replicas": replicas})
        );
    } else {
        println!(
            "published {name}: {rows} rows in {chunks} chunks ({}), {replicas} replica(s) each (log index {index})",
            format_size(bytes)
        );
    }
    Ok(())
}

fn parse_attributes(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .with_context(|| format!("--attr `{pair}` is not KEY=VALUE"))
        })
        .collect()
}

/// Runs a `cairn datasets` command.
pub async fn run(args: DatasetsArgs) -> anyhow::Result<()> {
    let json = args.client.json;
    let client = connect(&args.client).await?;
    match args.command {
        DatasetsCommand::List => {
            let names = client.list_datasets().await?;
            if json {
                println!("{}", json!(names));
            } else {
                for name in names {
                    println!("{name}");
                }
            }
        }
        DatasetsCommand::Info { name } => show_info(&client, &name, json).await?,
        DatasetsCommand::Get { name, output, head } => {
            let dataset = client.get_dataset(&name).await?;
            match &dataset.content {
                Content::Value(value) => show_value(&dataset, value, output.as_deref(), json)?,
                Content::Collection(collection) => get_collection(collection, output.as_deref(), head, json).await?,
                Content::View(view) => get_view(&name, view, output.as_deref(), head, json).await?,
            }
        }
        DatasetsCommand::Publish {
            name,
            files,
            replicas,
            chunk_rows,
            override_existing,
            attributes,
        } => {
            let attributes = parse_attributes(&attributes)?;
            publish_files(
                &client,
                &name,
                &files,
                replicas,
                chunk_rows,
                override_existing,
                attributes,
                json,
            )
            .await?
        }
        DatasetsCommand::Put {
            name,
            value,
            content_type,
            override_existing,
            attributes,
        } => {
            let data = if value == "-" {
                let mut data = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut data)
                    .context("cannot read standard input")?;
                data
            } else {
                value.into_bytes()
            };
            let mut dataset = Dataset::new(name.clone(), Value::new(data, content_type));
            dataset.attributes = parse_attributes(&attributes)?;
            let index = client.publish_datasets(vec![dataset], override_existing).await?;
            if json {
                println!("{}", json!({"published": name, "log_index": index}));
            } else {
                println!("published {name} (log index {index})");
            }
        }
        DatasetsCommand::Rm { name } => {
            let index = client.unpublish_dataset(&name).await?;
            if json {
                println!("{}", json!({"unpublished": name, "log_index": index}));
            } else {
                println!("unpublished {name} (log index {index})");
            }
        }
    }
    Ok(())
}
