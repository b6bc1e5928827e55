//! The seed "Publishing data with Dask" (`publishing-data-with-dask.md`): publish a
//! multi-parameter model run as lazy views (nothing is read but the files' headers),
//! then, as a new client, discover the parameters, their units and shapes from the
//! published metadata alone, and compute one of them. Checked against the files.
//! Unlike Dask's scheduler, the published run survives a scheduler failure: the
//! catalog is replicated.
//!
//! ```text
//! scripts/make-seed-data --out seed-data          # once
//! cargo run -p cairn-client --example publish_model_run -- [--data seed-data] [--cluster A,B,C] [--compute air_temperature]
//! ```

mod common;

use std::collections::BTreeSet;

use cairn_client::{netcdf_io, Client, Content, Grid};
use common::{check, Args};

const USAGE: &str = "publish_model_run [--data DIR] [--cluster A,B,C] [--compute PARAMETER]";
const PREFIX: &str = "model_run/";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let data = args.data().join("model_run");
    common::require(&data);

    // The publisher: every parameter of the run, lazily (Iris loads metadata only).
    let publisher = Client::connect(args.cluster()).await?;
    let mut parameters = BTreeSet::new();
    for file in common::files(&format!("{}/*.nc", data.display())) {
        for variable in netcdf_io::variables(&file)? {
            parameters.insert(variable.name);
        }
    }
    for parameter in &parameters {
        let pattern = format!("{}/{parameter}_*.nc", data.display());
        let grid = publisher.read_netcdf(&pattern, parameter)?;
        let name = format!("{PREFIX}{parameter}");
        // Replaces an earlier run's view of the same name.
        let _ = publisher.unpublish_dataset(&name).await;
        publisher.publish_view(&name, grid.lazy(), grid.attributes()).await?;
        println!("published {name}: a view of {} chunks", grid.npartitions());
    }

    // A new session: what does the run contain? Metadata only, no data read.
    let explorer = Client::connect(args.cluster()).await?;
    let published: Vec<String> = explorer
        .list_datasets()
        .await?
        .into_iter()
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    println!(
        "\n{:<36} {:<8} {:<28} {:<18} standard_name",
        "dataset", "units", "dims", "shape"
    );
    for name in &published {
        let info = explorer.dataset_info(name).await?;
        let attribute = |key: &str| info.attributes.get(key).cloned().unwrap_or_default();
        println!(
            "{name:<36} {:<8} {:<28} {:<18} {}",
            attribute("units"),
            attribute("dims"),
            attribute("shape"),
            attribute("standard_name")
        );
    }
    let expected: BTreeSet<String> = parameters.iter().map(|p| format!("{PREFIX}{p}")).collect();
    check(
        expected.iter().all(|name| published.contains(name)),
        "the new client discovers every parameter",
    );

    // Compute one parameter (the seed plots a sample; here: its mean and range).
    let parameter = args.get("compute").unwrap_or("air_temperature");
    let name = format!("{PREFIX}{parameter}");
    let dataset = explorer.get_dataset(&name).await?;
    let Content::View(view) = &dataset.content else {
        return Err(format!("{name} is not a view").into());
    };
    let grid = Grid::new(view.compute().await?)?;
    let (min, mean, max) = common::summary(grid.values());
    println!(
        "\n{name}: computed {:?} ({}), min {min:.3}, mean {mean:.3}, max {max:.3}",
        grid.shape(),
        grid.meta().attrs.get("units").map(|u| u.display()).unwrap_or_default()
    );
    let (_, direct, _) = common::read_direct(&format!("{}/{parameter}_*.nc", data.display()), parameter)?;
    let (worst, differing) = common::compare(grid.values(), &direct, 0.0);
    check(
        differing == 0 && worst == 0.0,
        &format!("{name} computed from the view equals the files"),
    );
    Ok(())
}
