//! Gridded collections: NetCDF variables (and what is computed from them) as lazy
//! collections of gridded chunks ([`crate::grid`]), chunked along their row
//! dimension (time by default) — xarray's `open_mfdataset(...).var` on Dask, as the
//! seeds use it with Iris.
//!
//! The client reads the files' headers to plan (so the grid, its coordinates and
//! attributes are known before anything runs, and a glob of mismatched grids is an
//! error naming the file); the workers read the data.
//!
//! ```no_run
//! # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
//! let u = client.read_netcdf("data/x_wind_*.nc", "x_wind")?;
//! let v = client.read_netcdf("data/y_wind_*.nc", "y_wind")?;
//! let speed = u.hypot(&v, "wind_speed")?;
//! let variance = speed.reduce("var")?.compute().await?;   // per grid cell, over time
//! variance.to_netcdf("speed_variance.nc".as_ref())?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;

use crate::error::Error;
use crate::grid::{first_coordinate_difference, gather_f64, GridMeta};
use crate::lazy::{LazyCollection, Persisted};
use crate::netcdf_io;
use crate::tasks::{Delayed, TaskArg};
use crate::Client;

/// Target size of one chunk when [`NetcdfOptions::chunk_rows`] is not given.
pub const DEFAULT_GRID_CHUNK_BYTES: usize = 32 << 20;

/// How [`Client::read_netcdf_with`] chunks a variable.
///
/// ```
/// let options = cairn_client::NetcdfOptions { dim: Some("time".into()), chunk_rows: Some(8) };
/// assert_eq!(options.chunk_rows, Some(8));
/// ```
#[derive(Debug, Clone, Default)]
pub struct NetcdfOptions {
    /// The dimension to chunk along (default: the unlimited dimension, else `time`,
    /// else the first).
    pub dim: Option<String>,
    /// Indexes of that dimension per chunk (default: about
    /// [`DEFAULT_GRID_CHUNK_BYTES`] per chunk, never across files).
    pub chunk_rows: Option<usize>,
}

/// A lazy gridded collection: partitions of one grid, in order along the row
/// dimension, with the grid known on the client.
#[derive(Debug, Clone)]
pub struct GridCollection {
    lazy: LazyCollection,
    meta: GridMeta,
    value_type: DataType,
    /// The row coordinate values of each partition.
    row_coords: Vec<Vec<f64>>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument {
        message: message.into(),
    }
}

/// The local files matching `pattern`, sorted (a remote pattern is the clear "local
/// or mounted path" error).
fn local_files(pattern: &str) -> Result<Vec<PathBuf>, Error> {
    netcdf_io::refuse_remote(Path::new(pattern))?;
    crate::lazy::expand(pattern)
}

impl Client {
    /// A NetCDF variable over the files matching `pattern` (a path or glob), chunked
    /// along time (see [`NetcdfOptions`] for the defaults). Files are ordered by their
    /// first row coordinate (xarray's `combine="by_coords"`); every file must hold
    /// the variable on the same grid.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let u = client.read_netcdf("data/x_wind_*.nc", "x_wind")?;
    /// println!("{:?} {:?}", u.meta().dims, u.shape());
    /// # Ok(()) }
    /// ```
    pub fn read_netcdf(&self, pattern: &str, variable: &str) -> Result<GridCollection, Error> {
        self.read_netcdf_with(pattern, variable, &NetcdfOptions::default())
    }

    /// [`Client::read_netcdf`] with a chosen dimension and chunk size.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let options = cairn_client::NetcdfOptions { dim: None, chunk_rows: Some(6) };
    /// let u = client.read_netcdf_with("data/x_wind_*.nc", "x_wind", &options)?;
    /// # Ok(()) }
    /// ```
    pub fn read_netcdf_with(
        &self,
        pattern: &str,
        variable: &str,
        options: &NetcdfOptions,
    ) -> Result<GridCollection, Error> {
        if options.chunk_rows == Some(0) {
            return Err(invalid("chunk_rows must be at least 1"));
        }
        let mut files = Vec::new();
        for path in local_files(pattern)? {
            let header = netcdf_io::inspect(&path, variable, options.dim.as_deref())?;
            files.push((path, header));
        }
        files.sort_by(|a, b| {
            let first = |header: &netcdf_io::VariableHeader| header.row_coord.first().copied().unwrap_or(f64::NAN);
            first(&a.1).total_cmp(&first(&b.1)).then_with(|| a.0.cmp(&b.0))
        });
        let (first_path, first) = files
            .first()
            .ok_or_else(|| invalid(format!("no file matches {pattern:?}")))?;
        for (path, header) in &files[1..] {
            first.meta.check_aligned(&header.meta).map_err(|error| {
                invalid(format!(
                    "{}: its grid differs from {}'s: {error}",
                    path.display(),
                    first_path.display()
                ))
            })?;
            if header.value_type != first.value_type {
                return Err(invalid(format!(
                    "{}: {variable} holds {} values but {} holds {}",
                    path.display(),
                    header.value_type,
                    first_path.display(),
                    first.value_type
                )));
            }
        }
        let value_bytes = if first.value_type == DataType::Float64 { 8 } else { 4 };
        let chunk_rows = options
            .chunk_rows
            .unwrap_or_else(|| (DEFAULT_GRID_CHUNK_BYTES / (first.meta.cells() * value_bytes).max(1)).max(1));
        let dim = TaskArg::from(first.meta.row_dim.as_str());
        let mut partitions = Vec::new();
        let mut row_coords = Vec::new();
        for (path, header) in &files {
            let path_arg = TaskArg::from(path.to_string_lossy().as_ref());
            let mut start = 0;
            while start < header.rows() {
                let end = (start + chunk_rows).min(header.rows());
                partitions.push(TaskArg::Task(Delayed::new(
                    "read_netcdf",
                    [
                        path_arg.clone(),
                        TaskArg::from(variable),
                        dim.clone(),
                        TaskArg::from(start as i64),
                        TaskArg::from(end as i64),
                    ],
                )));
                row_coords.push(header.row_coord[start..end].to_vec());
                start = end;
            }
        }
        Ok(GridCollection {
            lazy: self.collection(partitions),
            meta: first.meta.clone(),
            value_type: first.value_type.clone(),
            row_coords,
        })
    }
}

/// JSON for a list of coordinate values (the `regrid` task's arguments).
fn json_numbers(values: &[f64]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

impl GridCollection {
    /// The grid (as planned on the client; results carry their own, authoritative
    /// metadata, with the attributes the workers set).
    pub fn meta(&self) -> &GridMeta {
        &self.meta
    }

    /// The values' type: `Float32` or `Float64`.
    pub fn value_type(&self) -> &DataType {
        &self.value_type
    }

    /// The row coordinate of the whole collection.
    pub fn row_coord(&self) -> Vec<f64> {
        self.row_coords.concat()
    }

    /// The shape, in the order of the grid's dimensions.
    pub fn shape(&self) -> Vec<usize> {
        self.meta.shape(self.row_coords.iter().map(Vec::len).sum())
    }

    /// How many partitions.
    pub fn npartitions(&self) -> usize {
        self.lazy.npartitions()
    }

    /// The collection underneath, for everything collections do (persist, publish as
    /// a view…).
    pub fn lazy(&self) -> &LazyCollection {
        &self.lazy
    }

    /// The grid's description as dataset attributes (variable, dims, shape, units,
    /// standard name, coordinate ranges, chunks): what to publish with it so that
    /// others can discover it without reading data.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let t = client.read_netcdf("run/air_temperature_*.nc", "air_temperature")?;
    /// client.publish_view("air_temperature", t.lazy(), t.attributes()).await?;
    /// # Ok(()) }
    /// ```
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let coord = self.row_coord();
        let mut attributes = self.meta.summary(coord.len());
        attributes.insert("chunks".to_string(), self.npartitions().to_string());
        attributes.insert("dtype".to_string(), self.value_type.to_string());
        if let (Some(first), Some(last)) = (coord.first(), coord.last()) {
            attributes.insert(format!("{}_range", self.meta.row_dim), format!("{first} .. {last}"));
        }
        attributes
    }

    fn derived(&self, lazy: LazyCollection, meta: GridMeta, value_type: DataType, row_coords: Vec<Vec<f64>>) -> Self {
        GridCollection {
            lazy,
            meta,
            value_type,
            row_coords,
        }
    }

    fn map_tasks(&self, make: impl Fn(&TaskArg) -> Delayed) -> LazyCollection {
        let partitions = self.lazy.partitions().iter().map(|p| TaskArg::Task(make(p)));
        self.lazy.client().collection(partitions)
    }

    /// Element-wise `op` with an aligned collection (same grid, same chunks along the
    /// row dimension): `add sub mul div pow hypot atan2 min max`; the result is
    /// called `name`. Misaligned grids are an error saying how they differ.
    ///
    /// ```no_run
    /// # fn demo(u: cairn_client::GridCollection, v: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let total = u.binary(&v, "add", "sum_of_winds")?;
    /// # Ok(()) }
    /// ```
    pub fn binary(&self, other: &GridCollection, op: &str, name: &str) -> Result<GridCollection, Error> {
        self.meta.check_aligned(&other.meta)?;
        if self.row_coords.len() != other.row_coords.len() {
            return Err(invalid(format!(
                "{} and {} are chunked differently: {} partitions against {}",
                self.meta.variable,
                other.meta.variable,
                self.row_coords.len(),
                other.row_coords.len()
            )));
        }
        for (index, (a, b)) in self.row_coords.iter().zip(&other.row_coords).enumerate() {
            if first_coordinate_difference(a, b).is_some() {
                return Err(invalid(format!(
                    "{} and {} do not line up along {}: partition {index} covers {:?} in one and {:?} in the other",
                    self.meta.variable,
                    other.meta.variable,
                    self.meta.row_dim,
                    (a.first(), a.last()),
                    (b.first(), b.last())
                )));
            }
        }
        let pairs: Vec<TaskArg> = self
            .lazy
            .partitions()
            .iter()
            .zip(other.lazy.partitions())
            .map(|(a, b)| {
                TaskArg::Task(Delayed::new(
                    "grid_binary",
                    [a.clone(), b.clone(), TaskArg::from(op), TaskArg::from(name)],
                ))
            })
            .collect();
        let mut meta = self.meta.clone();
        meta.variable = name.to_string();
        let value_type = if self.value_type == DataType::Float32 && other.value_type == DataType::Float32 {
            DataType::Float32
        } else {
            DataType::Float64
        };
        let lazy = self.lazy.client().collection(pairs);
        Ok(self.derived(lazy, meta, value_type, self.row_coords.clone()))
    }

    /// `hypot(self, other)` element-wise: the wind speed of two components.
    ///
    /// ```no_run
    /// # fn demo(u: cairn_client::GridCollection, v: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let speed = u.hypot(&v, "wind_speed")?;
    /// # Ok(()) }
    /// ```
    pub fn hypot(&self, other: &GridCollection, name: &str) -> Result<GridCollection, Error> {
        self.binary(other, "hypot", name)
    }

    /// `atan2(self, other)` element-wise, in radians (`self` is y, `other` is x).
    ///
    /// ```no_run
    /// # fn demo(u: cairn_client::GridCollection, v: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let angle = v.atan2(&u, "angle")?;
    /// # Ok(()) }
    /// ```
    pub fn atan2(&self, other: &GridCollection, name: &str) -> Result<GridCollection, Error> {
        self.binary(other, "atan2", name)
    }

    /// Element-wise `op`: with a `value`, `add sub mul div pow mod rsub`; without,
    /// `neg abs sqrt exp log degrees radians`. The result keeps the name unless
    /// `name` is given.
    ///
    /// ```no_run
    /// # fn demo(angle: cairn_client::GridCollection) {
    /// let degrees = angle.map("degrees", None, None).map("mod", Some(360.0), Some("wind_from_direction"));
    /// # }
    /// ```
    pub fn map(&self, op: &str, value: Option<f64>, name: Option<&str>) -> GridCollection {
        let value_arg = value.map_or(TaskArg::Literal(crate::Literal::Null), TaskArg::from);
        let name_arg = name.map_or(TaskArg::Literal(crate::Literal::Null), TaskArg::from);
        let lazy = self.map_tasks(|partition| {
            Delayed::new(
                "grid_map",
                [
                    partition.clone(),
                    TaskArg::from(op),
                    value_arg.clone(),
                    name_arg.clone(),
                ],
            )
        });
        let mut meta = self.meta.clone();
        if let Some(name) = name {
            meta.variable = name.to_string();
        }
        self.derived(lazy, meta, self.value_type.clone(), self.row_coords.clone())
    }

    /// The part of the grid whose coordinate along `dim` lies in `[lo, hi]`
    /// (inclusive, either order), as xarray's `sel(dim=slice(lo, hi))`. Along the row
    /// dimension, partitions entirely outside are dropped here.
    ///
    /// ```no_run
    /// # fn demo(t: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let europe = t.sel("latitude", 35.0, 70.0)?.sel("longitude", -10.0, 30.0)?;
    /// # Ok(()) }
    /// ```
    pub fn sel(&self, dim: &str, lo: f64, hi: f64) -> Result<GridCollection, Error> {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let within = |value: f64| value >= lo && value <= hi;
        let task = |partition: &TaskArg| {
            TaskArg::Task(Delayed::new(
                "grid_sel",
                [
                    partition.clone(),
                    TaskArg::from(dim),
                    TaskArg::from(lo),
                    TaskArg::from(hi),
                ],
            ))
        };
        let mut meta = self.meta.clone();
        if dim == self.meta.row_dim {
            let mut partitions = Vec::new();
            let mut row_coords = Vec::new();
            for (partition, coord) in self.lazy.partitions().iter().zip(&self.row_coords) {
                let kept: Vec<f64> = coord.iter().copied().filter(|v| within(*v)).collect();
                if kept.is_empty() {
                    continue;
                }
                partitions.push(if kept.len() == coord.len() {
                    partition.clone()
                } else {
                    task(partition)
                });
                row_coords.push(kept);
            }
            let lazy = self.lazy.client().collection(partitions);
            return Ok(self.derived(lazy, meta, self.value_type.clone(), row_coords));
        }
        let Some(position) = meta.inner.iter().position(|coord| coord.name == dim) else {
            return Err(invalid(format!(
                "{} has no dimension {dim:?} (its dimensions: {})",
                self.meta.variable,
                self.meta.dims.join(", ")
            )));
        };
        let coord = &mut meta.inner[position];
        let (min, max) = coord
            .values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        coord.values.retain(|value| within(*value));
        if coord.values.is_empty() {
            return Err(invalid(format!(
                "no {dim} of {} lies in [{lo}, {hi}]: the grid covers [{min}, {max}]",
                self.meta.variable
            )));
        }
        let partitions = self.lazy.partitions().iter().map(task);
        let lazy = self.lazy.client().collection(partitions);
        Ok(self.derived(lazy, meta, self.value_type.clone(), self.row_coords.clone()))
    }

    /// Bilinear regridding of every chunk onto the target latitudes and longitudes
    /// (the seeds' `regrid_a_chunk`, in parallel): longitudes wrap around a global
    /// source grid; target points outside the source grid are missing, never
    /// extrapolated.
    ///
    /// ```no_run
    /// # fn demo(t: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let lats: Vec<f64> = (0..=40).map(|i| 40.0 + i as f64 * 0.5).collect();
    /// let lons: Vec<f64> = (0..=80).map(|i| -20.0 + i as f64 * 0.5).collect();
    /// let fine = t.regrid(&lats, &lons)?;
    /// # Ok(()) }
    /// ```
    pub fn regrid(&self, lats: &[f64], lons: &[f64]) -> Result<GridCollection, Error> {
        if lats.is_empty() || lons.is_empty() {
            return Err(invalid("regrid needs at least one target latitude and one longitude"));
        }
        self.meta.lat_lon()?;
        let (lat_arg, lon_arg) = (
            TaskArg::from(json_numbers(lats).as_str()),
            TaskArg::from(json_numbers(lons).as_str()),
        );
        let lazy =
            self.map_tasks(|partition| Delayed::new("regrid", [partition.clone(), lat_arg.clone(), lon_arg.clone()]));
        let mut meta = self.meta.clone();
        let count = meta.inner.len();
        meta.inner[count - 2].values = lats.to_vec();
        meta.inner[count - 1].values = lons.to_vec();
        Ok(self.derived(lazy, meta, self.value_type.clone(), self.row_coords.clone()))
    }

    /// A reduction along the row dimension, per grid cell (missing values skipped):
    /// `mean var std min max sum count` (`var`/`std` with `ddof` 0, as numpy), as a
    /// tree of partial results combined with a numerically stable parallel formula.
    /// The result has one row.
    ///
    /// ```no_run
    /// # async fn demo(speed: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let variance = speed.reduce("var")?.compute().await?;
    /// # Ok(()) }
    /// ```
    pub fn reduce(&self, stat: &str) -> Result<GridCollection, Error> {
        self.reduce_with_ddof(stat, 0)
    }

    /// [`GridCollection::reduce`] with `ddof` for `var` and `std` (1 is the sample
    /// variance, Iris's `VARIANCE` default).
    ///
    /// ```no_run
    /// # async fn demo(speed: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let sample_variance = speed.reduce_with_ddof("var", 1)?.compute().await?;
    /// # Ok(()) }
    /// ```
    pub fn reduce_with_ddof(&self, stat: &str, ddof: u32) -> Result<GridCollection, Error> {
        let stats = match stat {
            "mean" | "var" | "std" | "sum" | "count" => "moments",
            "min" | "max" => "minmax",
            other => {
                return Err(invalid(format!(
                    "unknown reduction {other:?}: mean, var, std, min, max, sum, count"
                )))
            }
        };
        if self.npartitions() == 0 {
            return Err(invalid(format!(
                "{}: nothing to reduce (no partitions)",
                self.meta.variable
            )));
        }
        let partials: Vec<TaskArg> = self
            .lazy
            .partitions()
            .iter()
            .map(|partition| TaskArg::Task(Delayed::new("grid_partial", [partition.clone(), TaskArg::from(stats)])))
            .collect();
        let combined = LazyCollection::tree("grid_combine", partials);
        let mut finalize = vec![TaskArg::Task(combined), TaskArg::from(stat)];
        if matches!(stat, "var" | "std") {
            finalize.push(TaskArg::from(i64::from(ddof)));
        } else if ddof != 0 {
            return Err(invalid(format!("ddof applies to var and std, not {stat}")));
        }
        let result = Delayed::new("grid_finalize", finalize);
        let coord = self.row_coord();
        let middle = match (coord.first(), coord.last()) {
            (Some(first), Some(last)) => vec![(first + last) / 2.0],
            _ => vec![0.0],
        };
        let lazy = self.lazy.client().collection([TaskArg::Task(result)]);
        Ok(self.derived(lazy, self.meta.clone(), DataType::Float64, vec![middle]))
    }

    /// Computes every partition and brings the grid here.
    ///
    /// ```no_run
    /// # async fn demo(speed: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let grid = speed.compute().await?;
    /// println!("{:?}", grid.shape());
    /// # Ok(()) }
    /// ```
    pub async fn compute(&self) -> Result<Grid, Error> {
        Grid::new(self.lazy.compute().await?)
    }

    /// Computes every partition and keeps the results on the workers.
    ///
    /// ```no_run
    /// # async fn demo(speed: cairn_client::GridCollection) -> Result<(), cairn_client::Error> {
    /// let held = speed.persist().await?;
    /// # Ok(()) }
    /// ```
    pub async fn persist(&self) -> Result<Persisted, Error> {
        self.lazy.persist().await
    }
}

/// A computed grid on the client: its chunks in order.
#[derive(Debug, Clone)]
pub struct Grid {
    batches: Vec<RecordBatch>,
    meta: GridMeta,
    row_coord: Vec<f64>,
    values: Vec<f64>,
}

impl Grid {
    /// The grid the chunks make (all must be gridded and aligned).
    ///
    /// ```
    /// assert!(cairn_client::Grid::new(vec![]).is_err());
    /// ```
    pub fn new(batches: Vec<RecordBatch>) -> Result<Grid, Error> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|batch| batch.num_rows() > 0).collect();
        let (meta, row_coord, values) = gather_f64(&batches)?;
        Ok(Grid {
            batches,
            meta,
            row_coord,
            values,
        })
    }

    /// The grid's metadata, as the workers wrote it.
    pub fn meta(&self) -> &GridMeta {
        &self.meta
    }

    /// The row coordinate.
    pub fn row_coord(&self) -> &[f64] {
        &self.row_coord
    }

    /// All values as `f64` (missing as NaN), C order in the order of
    /// [`GridMeta::dims`] with the row dimension first.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The shape, in the order of the grid's dimensions.
    pub fn shape(&self) -> Vec<usize> {
        self.meta.shape(self.row_coord.len())
    }

    /// The chunks.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Writes the grid as a NetCDF-4 file, with its coordinates and attributes.
    pub fn to_netcdf(&self, path: &Path) -> Result<(), Error> {
        Ok(netcdf_io::write(path, std::slice::from_ref(&self.batches))?)
    }
}
