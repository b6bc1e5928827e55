//! `cairn datasets list | info | get | put | rm`.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::Context;
use cairn_client::{Dataset, Value};
use serde_json::json;

use crate::args::{DatasetsArgs, DatasetsCommand};
use crate::discovery::connect;

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
        DatasetsCommand::Info { name } => {
            let info = client.dataset_info(&name).await?;
            if json {
                println!(
                    "{}",
                    json!({
                        "name": info.name, "kind": info.kind, "content_type": info.content_type,
                        "bytes": info.bytes, "attributes": info.attributes, "publisher": info.publisher,
                        "published_at_index": info.published_at_index,
                    })
                );
            } else {
                println!("name:         {}", info.name);
                println!("kind:         {}", info.kind);
                println!("content type: {}", info.content_type);
                println!("bytes:        {}", info.bytes);
                println!("publisher:    {}", info.publisher);
                println!("published at: log index {}", info.published_at_index);
                for (key, value) in &info.attributes {
                    println!("attribute:    {key}={value}");
                }
            }
        }
        DatasetsCommand::Get { name, output } => {
            let dataset = client.get_dataset(&name).await?;
            if let Some(path) = output {
                std::fs::write(&path, &dataset.value.data)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            } else if json {
                println!(
                    "{}",
                    json!({
                        "name": dataset.name, "content_type": dataset.value.content_type,
                        "value": dataset.value.as_text(), "bytes": dataset.value.data.len(),
                        "attributes": dataset.attributes, "publisher": dataset.publisher,
                        "published_at_index": dataset.published_at_index,
                    })
                );
            } else {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&dataset.value.data)?;
                if dataset.value.as_text().is_some_and(|text| !text.ends_with('\n')) {
                    stdout.write_all(b"\n")?;
                }
            }
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
