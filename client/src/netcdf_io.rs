//! NetCDF files (the seeds' model output) as gridded chunks ([`crate::grid`]), through
//! the `netcdf` crate over the system's libnetcdf (Debian's `libnetcdf-dev`).
//!
//! - [`inspect`] reads a variable's header only — dimensions, coordinates, attributes
//!   — which is what a client plans with and what discovery shows (no data read);
//! - [`read_rows`] reads a range of indexes along the row dimension as one chunk
//!   (what the workers' `read_netcdf` operation runs);
//! - [`write`] writes gridded collections back as one NetCDF-4 file.
//!
//! Reading applies CF packing (`scale_factor`, `add_offset`) and turns `_FillValue` /
//! `missing_value` into nulls, as xarray and Iris do; those attributes are not kept.
//! Values are `Float64` for double-precision variables and `Float32` otherwise.
//! NetCDF needs a local or mounted path: libnetcdf cannot read an object store here.
//!
//! ```no_run
//! use cairn_client::netcdf_io;
//! let header = netcdf_io::inspect("data/x_wind_000.nc".as_ref(), "x_wind", None)?;
//! println!("{} rows along {}, shape {:?}", header.rows(), header.meta.row_dim, header.meta.shape(header.rows()));
//! let first = netcdf_io::read_rows("data/x_wind_000.nc".as_ref(), "x_wind", None, 0, Some(4))?;
//! netcdf_io::write("out.nc".as_ref(), &[vec![first]])?;
//! # Ok::<(), netcdf_io::NetcdfError>(())
//! ```

use std::path::{Path, PathBuf};

use arrow::array::{Float32Array, Float64Array, RecordBatch};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Float32Type, Float64Type};

use crate::grid::{first_coordinate_difference, gather_f64, AttrValue, Attrs, Coord, GridBatch, GridError, GridMeta};

/// A NetCDF error, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum NetcdfError {
    /// The file cannot be opened or read, or libnetcdf failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is readable but not what was asked for (no such variable, a
    /// dimension it does not have, a range past the end…).
    #[error("{path}: {message}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Batches that are not one gridded collection.
    #[error("{0}")]
    Grid(#[from] GridError),
}

/// A job for the NetCDF thread.
type Job = Box<dyn FnOnce() + Send>;

/// The name of the one thread that calls libnetcdf in this process.
const NETCDF_THREAD: &str = "cairn-netcdf";

/// Runs `job` on the process's one NetCDF thread and waits for its result.
///
/// libnetcdf and HDF5 are not made for several threads: the `netcdf` crate serialises
/// every call with a lock anyway, and HDF5 keeps per-thread state (its error printing
/// is switched off only on the thread that initialised it, so calls from other
/// threads print `HDF5-DIAG` noise). One thread loses no parallelism and keeps both
/// libraries on the thread they expect. Nested calls run in place.
fn on_netcdf_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static JOBS: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = std::sync::OnceLock::new();
    if std::thread::current().name() == Some(NETCDF_THREAD) {
        return job();
    }
    let jobs = JOBS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(NETCDF_THREAD.to_string())
            .spawn(move || {
                for job in receiver {
                    // A panicking job (a bug) must not take the thread with it: its
                    // caller sees the reply channel close and panics in its place.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(error) = spawned {
            tracing::error!("cannot start the NetCDF thread: {error}");
        }
        std::sync::Mutex::new(sender)
    });
    let (reply, result) = std::sync::mpsc::sync_channel(1);
    let boxed: Job = Box::new(move || {
        let _ = reply.send(job());
    });
    let sent = jobs.lock().map(|sender| sender.send(boxed));
    match sent {
        Ok(Ok(())) => match result.recv() {
            Ok(value) => value,
            // The job panicked on the NetCDF thread (a bug): surface it here.
            Err(_) => panic!("a NetCDF call panicked"),
        },
        _ => panic!("the NetCDF thread is gone"),
    }
}

/// A client call's error: invalid input, naming the file.
impl From<NetcdfError> for crate::Error {
    fn from(error: NetcdfError) -> crate::Error {
        crate::Error::InvalidArgument {
            message: error.to_string(),
        }
    }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> NetcdfError {
    NetcdfError::File {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn content_error(path: &Path, message: impl Into<String>) -> NetcdfError {
    NetcdfError::Content {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// What a file's header says about one variable.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableHeader {
    /// The grid, chunked along the chosen row dimension.
    pub meta: GridMeta,
    /// The row dimension's coordinate values in this file.
    pub row_coord: Vec<f64>,
    /// `Float32` or `Float64`: the type of the values read.
    pub value_type: DataType,
}

impl VariableHeader {
    /// Indexes along the row dimension in this file.
    pub fn rows(&self) -> usize {
        self.row_coord.len()
    }
}

/// One variable of a file, as listed by [`variables`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariableSummary {
    /// The variable's name.
    pub name: String,
    /// Its dimensions, in storage order.
    pub dims: Vec<String>,
    /// Their sizes.
    pub shape: Vec<usize>,
    /// Its attributes.
    pub attrs: Attrs,
}

/// Whether `path` names an object store rather than a file.
pub(crate) fn refuse_remote(path: &Path) -> Result<(), NetcdfError> {
    let text = path.to_string_lossy();
    if ["s3://", "http://", "https://", "gs://", "az://"]
        .iter()
        .any(|scheme| text.starts_with(scheme))
    {
        return Err(content_error(
            path,
            "NetCDF needs a local or mounted path (libnetcdf cannot read it by byte range from an object store here): \
             copy the file to local disk or mount the bucket (e.g. with s3fs or mountpoint-s3) and give that path",
        ));
    }
    Ok(())
}

fn open(path: &Path) -> Result<netcdf::File, NetcdfError> {
    refuse_remote(path)?;
    if !path.exists() {
        return Err(content_error(path, "no such file"));
    }
    netcdf::open(path).map_err(|error| file_error(path, format!("cannot open as NetCDF: {error}")))
}

fn attr_value(value: netcdf::AttributeValue) -> AttrValue {
    use netcdf::AttributeValue as A;
    let numbers = |values: Vec<f64>| AttrValue::Numbers(values);
    match value {
        A::Str(text) => AttrValue::Text(text),
        A::Strs(texts) => AttrValue::Text(texts.join("\n")),
        A::Uchar(v) => numbers(vec![f64::from(v)]),
        A::Uchars(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Schar(v) => numbers(vec![f64::from(v)]),
        A::Schars(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Ushort(v) => numbers(vec![f64::from(v)]),
        A::Ushorts(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Short(v) => numbers(vec![f64::from(v)]),
        A::Shorts(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Uint(v) => numbers(vec![f64::from(v)]),
        A::Uints(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Int(v) => numbers(vec![f64::from(v)]),
        A::Ints(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Ulonglong(v) => numbers(vec![v as f64]),
        A::Ulonglongs(v) => numbers(v.into_iter().map(|x| x as f64).collect()),
        A::Longlong(v) => numbers(vec![v as f64]),
        A::Longlongs(v) => numbers(v.into_iter().map(|x| x as f64).collect()),
        A::Float(v) => numbers(vec![f64::from(v)]),
        A::Floats(v) => numbers(v.into_iter().map(f64::from).collect()),
        A::Double(v) => numbers(vec![v]),
        A::Doubles(v) => numbers(v),
    }
}

/// Attributes that reading applies (packing, missing values) or that only libnetcdf
/// uses; not kept in a [`GridMeta`].
const APPLIED_ATTRS: [&str; 5] = [
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "_Netcdf4Dimid",
];

fn attrs_of<'a>(attributes: impl Iterator<Item = netcdf::Attribute<'a>>) -> Attrs {
    attributes
        .filter(|attribute| !APPLIED_ATTRS.contains(&attribute.name()) && !attribute.name().starts_with("_Netcdf4"))
        .filter_map(|attribute| {
            let value = attribute.value().ok()?;
            Some((attribute.name().to_string(), attr_value(value)))
        })
        .collect()
}

fn number_attr(variable: &netcdf::Variable<'_>, name: &str) -> Option<f64> {
    match variable.attribute(name)?.value().ok().map(attr_value)? {
        AttrValue::Numbers(values) => values.first().copied(),
        AttrValue::Text(_) => None,
    }
}

/// The coordinate of dimension `name` (its coordinate variable's values, or 0, 1, 2…).
fn coord_of(file: &netcdf::File, path: &Path, name: &str, len: usize) -> Result<Coord, NetcdfError> {
    match file.variable(name) {
        Some(variable) if variable.dimensions().len() == 1 => {
            let values: Vec<f64> = variable
                .get_values::<f64, _>(..)
                .map_err(|error| file_error(path, format!("cannot read coordinate {name}: {error}")))?;
            Ok(Coord {
                name: name.to_string(),
                values,
                attrs: attrs_of(variable.attributes()),
            })
        }
        _ => Ok(Coord::new(name, (0..len).map(|i| i as f64).collect())),
    }
}

/// The dimension a variable is chunked along by default: its unlimited dimension,
/// else one called `time` (or whose coordinate says `axis = T` or
/// `standard_name = time`), else its first.
fn default_row_dim(file: &netcdf::File, variable: &netcdf::Variable<'_>) -> Option<String> {
    let dims = variable.dimensions();
    if let Some(dim) = dims.iter().find(|dim| dim.is_unlimited()) {
        return Some(dim.name());
    }
    let is_time = |name: &str| {
        name == "time"
            || file.variable(name).is_some_and(|coord| {
                let text = |key: &str| coord.attribute(key).and_then(|a| a.value().ok()).map(attr_value);
                text("axis") == Some(AttrValue::from("T")) || text("standard_name") == Some(AttrValue::from("time"))
            })
    };
    dims.iter()
        .map(|dim| dim.name())
        .find(|name| is_time(name))
        .or_else(|| dims.first().map(|dim| dim.name()))
}

/// The header of `variable` in the file at `path`, chunked along `row_dim` (default:
/// the unlimited dimension, else `time`, else the first). Reads no data but the
/// coordinates.
///
/// ```no_run
/// let header = cairn_client::netcdf_io::inspect("x_wind.nc".as_ref(), "x_wind", Some("time"))?;
/// assert_eq!(header.meta.variable, "x_wind");
/// # Ok::<(), cairn_client::netcdf_io::NetcdfError>(())
/// ```
pub fn inspect(path: &Path, variable: &str, row_dim: Option<&str>) -> Result<VariableHeader, NetcdfError> {
    let (path, variable, row_dim) = (path.to_path_buf(), variable.to_string(), row_dim.map(str::to_string));
    on_netcdf_thread(move || inspect_here(&path, &variable, row_dim.as_deref()))
}

fn inspect_here(path: &Path, variable: &str, row_dim: Option<&str>) -> Result<VariableHeader, NetcdfError> {
    inspect_file(&open(path)?, path, variable, row_dim)
}

/// [`inspect`] of a file already open (`path` names it in errors).
fn inspect_file(
    file: &netcdf::File,
    path: &Path,
    variable: &str,
    row_dim: Option<&str>,
) -> Result<VariableHeader, NetcdfError> {
    let var = file.variable(variable).ok_or_else(|| {
        let names: Vec<String> = file.variables().map(|v| v.name()).collect();
        content_error(
            path,
            format!("no variable {variable:?} (the file has: {})", names.join(", ")),
        )
    })?;
    let dims: Vec<(String, usize)> = var.dimensions().iter().map(|dim| (dim.name(), dim.len())).collect();
    if dims.is_empty() {
        return Err(content_error(
            path,
            format!("{variable} is a scalar, not a gridded variable"),
        ));
    }
    let row_dim = match row_dim {
        Some(name) => {
            if !dims.iter().any(|(dim, _)| dim == name) {
                let names: Vec<&str> = dims.iter().map(|(dim, _)| dim.as_str()).collect();
                return Err(content_error(
                    path,
                    format!(
                        "{variable} has no dimension {name:?} (its dimensions: {})",
                        names.join(", ")
                    ),
                ));
            }
            name.to_string()
        }
        None => default_row_dim(file, &var).unwrap_or_else(|| dims[0].0.clone()),
    };
    let value_type = match var.vartype() {
        netcdf::types::NcVariableType::Float(netcdf::types::FloatType::F64) => DataType::Float64,
        netcdf::types::NcVariableType::Float(_) | netcdf::types::NcVariableType::Int(_) => {
            if var
                .attribute("scale_factor")
                .is_some_and(|a| matches!(a.value(), Ok(netcdf::AttributeValue::Double(_))))
            {
                DataType::Float64
            } else {
                DataType::Float32
            }
        }
        other => {
            return Err(content_error(
                path,
                format!("{variable} holds {other:?} values; only numeric variables are gridded"),
            ))
        }
    };
    let mut inner = Vec::new();
    let mut row = None;
    for (name, len) in &dims {
        let coord = coord_of(file, path, name, *len)?;
        if *name == row_dim {
            row = Some(coord);
        } else {
            inner.push(coord);
        }
    }
    let row = row.ok_or_else(|| content_error(path, format!("no dimension {row_dim}")))?;
    let meta = GridMeta {
        variable: variable.to_string(),
        row_dim: row_dim.clone(),
        dims: dims.iter().map(|(name, _)| name.clone()).collect(),
        inner,
        attrs: attrs_of(var.attributes()),
        row_attrs: row.attrs.clone(),
        global_attrs: attrs_of(file.attributes()),
    };
    Ok(VariableHeader {
        meta,
        row_coord: row.values,
        value_type,
    })
}

/// The gridded (numeric, at least one dimension) variables of a file that are not
/// coordinates, with their dimensions and attributes: what a model run offers.
///
/// ```no_run
/// for variable in cairn_client::netcdf_io::variables("run.nc".as_ref())? {
///     println!("{} {:?}", variable.name, variable.shape);
/// }
/// # Ok::<(), cairn_client::netcdf_io::NetcdfError>(())
/// ```
pub fn variables(path: &Path) -> Result<Vec<VariableSummary>, NetcdfError> {
    let path = path.to_path_buf();
    on_netcdf_thread(move || variables_here(&path))
}

fn variables_here(path: &Path) -> Result<Vec<VariableSummary>, NetcdfError> {
    let file = open(path)?;
    let dim_names: Vec<String> = file.dimensions().map(|dim| dim.name()).collect();
    Ok(file
        .variables()
        .filter(|var| !dim_names.contains(&var.name()) && !var.dimensions().is_empty())
        .filter(|var| {
            matches!(
                var.vartype(),
                netcdf::types::NcVariableType::Float(_) | netcdf::types::NcVariableType::Int(_)
            )
        })
        .map(|var| VariableSummary {
            name: var.name(),
            dims: var.dimensions().iter().map(|dim| dim.name()).collect(),
            shape: var.dimensions().iter().map(|dim| dim.len()).collect(),
            attrs: attrs_of(var.attributes()),
        })
        .collect())
}

/// Reads indexes `[start, end)` along the row dimension of `variable` (`end` `None`:
/// to the last) as one gridded chunk (module docs; values transposed so the row
/// dimension comes first when it is not first in the file). The file is opened once.
///
/// ```no_run
/// let chunk = cairn_client::netcdf_io::read_rows("x_wind.nc".as_ref(), "x_wind", None, 0, Some(8))?;
/// assert_eq!(chunk.num_rows(), 8);
/// # Ok::<(), cairn_client::netcdf_io::NetcdfError>(())
/// ```
pub fn read_rows(
    path: &Path,
    variable: &str,
    row_dim: Option<&str>,
    start: usize,
    end: Option<usize>,
) -> Result<RecordBatch, NetcdfError> {
    let (path, variable, row_dim) = (path.to_path_buf(), variable.to_string(), row_dim.map(str::to_string));
    on_netcdf_thread(move || read_rows_here(&path, &variable, row_dim.as_deref(), start, end))
}

fn read_rows_here(
    path: &Path,
    variable: &str,
    row_dim: Option<&str>,
    start: usize,
    end: Option<usize>,
) -> Result<RecordBatch, NetcdfError> {
    let file = open(path)?;
    let header = inspect_file(&file, path, variable, row_dim)?;
    let total = header.rows();
    let end = end.unwrap_or(total);
    if start > end || end > total {
        return Err(content_error(
            path,
            format!(
                "rows {start}..{end} of {variable} along {}, which has {total}",
                header.meta.row_dim
            ),
        ));
    }
    let var = file
        .variable(variable)
        .ok_or_else(|| content_error(path, format!("no variable {variable:?}")))?;
    let meta = &header.meta;
    let row_pos = meta.dims.iter().position(|dim| *dim == meta.row_dim).unwrap_or(0);
    let shape = meta.shape(end - start);
    let extents: Vec<std::ops::Range<usize>> = shape
        .iter()
        .enumerate()
        .map(|(i, len)| if i == row_pos { start..end } else { 0..*len })
        .collect();
    let coord = &header.row_coord[start..end];
    let fill = number_attr(&var, "_FillValue");
    let missing = number_attr(&var, "missing_value");
    let scale = number_attr(&var, "scale_factor");
    let offset = number_attr(&var, "add_offset");
    let read_error = |error: netcdf::Error| file_error(path, format!("cannot read {variable}: {error}"));
    let outer: usize = shape[..row_pos].iter().product();
    let after: usize = shape[row_pos + 1..].iter().product();
    let rows = end - start;
    if header.value_type == DataType::Float64 {
        let raw: Vec<f64> = var.get_values::<f64, _>(extents).map_err(read_error)?;
        let raw = swap_axes(raw, outer, rows, after);
        let (values, nulls) = decode(raw, fill, missing, scale, offset, |v| v, |v| v);
        let array = Float64Array::new(ScalarBuffer::from(values), nulls);
        Ok(meta.batch_of::<Float64Type>(coord, array)?)
    } else {
        let raw: Vec<f32> = var.get_values::<f32, _>(extents).map_err(read_error)?;
        let raw = swap_axes(raw, outer, rows, after);
        let (values, nulls) = decode(raw, fill, missing, scale, offset, f64::from, |v| v as f32);
        let array = Float32Array::new(ScalarBuffer::from(values), nulls);
        Ok(meta.batch_of::<Float32Type>(coord, array)?)
    }
}

/// Values laid out `[first][second][after]` re-laid as `[second][first][after]`: from
/// storage order `[outer][rows][after]` to rows first when reading (`first = outer`),
/// and back when writing (`first = rows`). Nothing to do when either is 1.
fn swap_axes<T: Copy + Default>(values: Vec<T>, first: usize, second: usize, after: usize) -> Vec<T> {
    if first <= 1 || second <= 1 {
        return values;
    }
    let mut out = vec![T::default(); values.len()];
    for f in 0..first {
        for s in 0..second {
            let from = (f * second + s) * after;
            let to = (s * first + f) * after;
            out[to..to + after].copy_from_slice(&values[from..from + after]);
        }
    }
    out
}

/// Applies missing values (to nulls) and packing to raw values.
fn decode<T: Copy + Default>(
    mut raw: Vec<T>,
    fill: Option<f64>,
    missing: Option<f64>,
    scale: Option<f64>,
    offset: Option<f64>,
    to_f64: impl Fn(T) -> f64,
    from_f64: impl Fn(f64) -> T,
) -> (Vec<T>, Option<NullBuffer>) {
    // Each marker as a number no value equals (NaN) when absent, and whether NaN itself
    // marks a missing value: the test has no branches, so the scan vectorises.
    let nan_marks = [fill, missing].iter().any(|marker| marker.is_some_and(f64::is_nan));
    let (fill_value, missing_value) = (fill.unwrap_or(f64::NAN), missing.unwrap_or(f64::NAN));
    let is_missing = |value: f64| (value == fill_value) | (value == missing_value) | (nan_marks & value.is_nan());
    // Most fields have no missing value: one scan without allocating first.
    let any_missing = (fill.is_some() || missing.is_some())
        && raw
            .chunks(4096)
            .any(|block| block.iter().fold(false, |any, v| any | is_missing(to_f64(*v))));
    let nulls = if any_missing {
        let valid: Vec<bool> = raw.iter().map(|v| !is_missing(to_f64(*v))).collect();
        Some(NullBuffer::from(valid))
    } else {
        None
    };
    if scale.is_some() || offset.is_some() {
        let (scale, offset) = (scale.unwrap_or(1.0), offset.unwrap_or(0.0));
        for value in &mut raw {
            *value = from_f64(to_f64(*value) * scale + offset);
        }
    }
    (raw, nulls)
}

/// NetCDF's default fill for floats, written where a value is missing.
const FILL: f64 = 9.969_209_968_386_869e36;

fn put_attrs(variable: &mut netcdf::VariableMut<'_>, attrs: &Attrs, path: &Path) -> Result<(), NetcdfError> {
    for (name, value) in attrs {
        let result = match value {
            AttrValue::Text(text) => variable.put_attribute(name, text.as_str()).map(|_| ()),
            AttrValue::Numbers(numbers) if numbers.len() == 1 => variable.put_attribute(name, numbers[0]).map(|_| ()),
            AttrValue::Numbers(numbers) => variable.put_attribute(name, numbers.clone()).map(|_| ()),
        };
        result.map_err(|error| file_error(path, format!("cannot write attribute {name}: {error}")))?;
    }
    Ok(())
}

/// Writes gridded collections (each a list of chunks, in order) as the variables of
/// one NetCDF-4 file at `path`, with their coordinates and attributes; collections
/// sharing a dimension name must agree on its coordinate. Missing values are written
/// as the default fill value, declared as `_FillValue`.
///
/// ```no_run
/// # fn demo(speed: Vec<arrow::array::RecordBatch>) -> Result<(), cairn_client::netcdf_io::NetcdfError> {
/// cairn_client::netcdf_io::write("speed.nc".as_ref(), &[speed])?;
/// # Ok(()) }
/// ```
pub fn write(path: &Path, collections: &[Vec<RecordBatch>]) -> Result<(), NetcdfError> {
    let (path, collections) = (path.to_path_buf(), collections.to_vec());
    on_netcdf_thread(move || write_here(&path, &collections))
}

fn write_here(path: &Path, collections: &[Vec<RecordBatch>]) -> Result<(), NetcdfError> {
    refuse_remote(path)?;
    let mut grids = Vec::new();
    for batches in collections {
        let (meta, coord, values) = gather_f64(batches)?;
        let value_type = GridBatch::new(&batches[0])?.value_type();
        grids.push((meta, coord, values, value_type));
    }
    let mut file = netcdf::create(path).map_err(|error| file_error(path, format!("cannot create: {error}")))?;
    // Dimensions and coordinates, once each.
    let mut written: Vec<Coord> = Vec::new();
    for (meta, coord, _, _) in &grids {
        let mut row = Coord::new(&meta.row_dim, coord.clone());
        row.attrs = meta.row_attrs.clone();
        for dim in std::iter::once(&row).chain(meta.inner.iter()) {
            if let Some(existing) = written.iter().find(|c| c.name == dim.name) {
                if first_coordinate_difference(&existing.values, &dim.values).is_some() {
                    return Err(content_error(
                        path,
                        format!("{} has different coordinates in the variables written", dim.name),
                    ));
                }
                continue;
            }
            file.add_dimension(&dim.name, dim.len())
                .map_err(|error| file_error(path, format!("cannot add dimension {}: {error}", dim.name)))?;
            let mut variable = file
                .add_variable::<f64>(&dim.name, &[dim.name.as_str()])
                .map_err(|error| file_error(path, format!("cannot add coordinate {}: {error}", dim.name)))?;
            put_attrs(&mut variable, &dim.attrs, path)?;
            variable
                .put_values(&dim.values, ..)
                .map_err(|error| file_error(path, format!("cannot write coordinate {}: {error}", dim.name)))?;
            written.push(dim.clone());
        }
    }
    for (meta, coord, values, value_type) in &grids {
        let dims: Vec<&str> = meta.dims.iter().map(String::as_str).collect();
        let row_pos = meta.dims.iter().position(|dim| *dim == meta.row_dim).unwrap_or(0);
        let shape = meta.shape(coord.len());
        let outer: usize = shape[..row_pos].iter().product();
        let after: usize = shape[row_pos + 1..].iter().product();
        let ordered = swap_axes(values.clone(), coord.len(), outer, after);
        let name = meta.variable.as_str();
        let add_error = |error: netcdf::Error| file_error(path, format!("cannot add variable {name}: {error}"));
        let write_error = |error: netcdf::Error| file_error(path, format!("cannot write {name}: {error}"));
        if *value_type == DataType::Float64 {
            let mut variable = file.add_variable::<f64>(name, &dims).map_err(add_error)?;
            variable.set_fill_value(FILL).map_err(add_error)?;
            put_attrs(&mut variable, &meta.attrs, path)?;
            let data: Vec<f64> = ordered.iter().map(|v| if v.is_nan() { FILL } else { *v }).collect();
            variable.put_values(&data, ..).map_err(write_error)?;
        } else {
            let mut variable = file.add_variable::<f32>(name, &dims).map_err(add_error)?;
            variable.set_fill_value(FILL as f32).map_err(add_error)?;
            put_attrs(&mut variable, &meta.attrs, path)?;
            let data: Vec<f32> = ordered
                .iter()
                .map(|v| if v.is_nan() { FILL as f32 } else { *v as f32 })
                .collect();
            variable.put_values(&data, ..).map_err(write_error)?;
        }
    }
    if let Some((meta, ..)) = grids.first() {
        for (name, value) in &meta.global_attrs {
            let result = match value {
                AttrValue::Text(text) => file.add_attribute(name, text.as_str()).map(|_| ()),
                AttrValue::Numbers(numbers) => file.add_attribute(name, numbers.clone()).map(|_| ()),
            };
            result.map_err(|error| file_error(path, format!("cannot write global attribute {name}: {error}")))?;
        }
    }
    file.close()
        .map_err(|error| file_error(path, format!("cannot close: {error}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_meta() -> GridMeta {
        let mut meta = GridMeta::new(
            "x_wind",
            "time",
            vec![
                Coord::new("latitude", vec![-10.0, 0.0, 10.0]),
                Coord::new("longitude", vec![0.0, 90.0, 180.0, 270.0]),
            ],
        );
        meta.attrs.insert("units".into(), AttrValue::from("m s-1"));
        meta.attrs.insert("standard_name".into(), AttrValue::from("x_wind"));
        meta.row_attrs
            .insert("units".into(), AttrValue::from("hours since 2026-01-01 00:00:00"));
        meta.inner[0]
            .attrs
            .insert("units".into(), AttrValue::from("degrees_north"));
        meta.global_attrs.insert("title".into(), AttrValue::from("test"));
        meta
    }

    #[test]
    fn writes_and_reads_back_with_attributes_and_nulls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wind.nc");
        let meta = sample_meta();
        let values: Vec<Option<f32>> = (0..24)
            .map(|i| if i == 5 { None } else { Some(i as f32 * 0.5) })
            .collect();
        let batch = meta.batch(&[0.0, 1.0], values).expect("batch");
        write(&path, &[vec![batch]]).expect("write");

        let header = inspect(&path, "x_wind", None).expect("inspect");
        assert_eq!(header.meta.row_dim, "time");
        assert_eq!(header.rows(), 2);
        assert_eq!(header.meta.inner, meta.inner);
        assert_eq!(header.meta.attrs, meta.attrs);
        assert_eq!(header.meta.global_attrs.get("title"), Some(&AttrValue::from("test")));
        let back = read_rows(&path, "x_wind", None, 1, Some(2)).expect("read");
        let grid = GridBatch::new(&back).expect("grid");
        assert_eq!(grid.row_coord(), &[1.0]);
        let read = grid.values_f64();
        assert_eq!(read[0], 6.0);
        let all = read_rows(&path, "x_wind", None, 0, Some(2)).expect("read all");
        assert!(GridBatch::new(&all).expect("grid").values_f64()[5].is_nan());
    }

    /// Missing values are the values equal to `_FillValue` or `missing_value`, NaN only
    /// where a marker is NaN; packing applies to every value.
    #[test]
    fn decode_marks_missing_values_and_unpacks() {
        let valid = |nulls: Option<NullBuffer>, len: usize| -> Vec<bool> {
            nulls.map_or(vec![true; len], |nulls| nulls.iter().collect())
        };
        let raw = vec![1.0_f32, -999.0, f32::NAN, 7.0, 9.0e36];
        let decode32 =
            |fill, missing, scale, offset| decode(raw.clone(), fill, missing, scale, offset, f64::from, |v| v as f32);
        let (values, nulls) = decode32(Some(-999.0), None, None, None);
        assert_eq!(
            valid(nulls, 5),
            [true, false, true, true, true],
            "a NaN value is a value"
        );
        assert_eq!(values[3], 7.0);
        let (_, nulls) = decode32(None, Some(f64::NAN), None, None);
        assert_eq!(valid(nulls, 5), [true, true, false, true, true], "a NaN marker");
        let (_, nulls) = decode32(Some(-999.0), Some(f64::from(9.0e36_f32)), None, None);
        assert_eq!(valid(nulls, 5), [true, false, true, true, false], "both markers");
        let (values, nulls) = decode32(Some(5.0), None, Some(2.0), Some(1.0));
        assert!(nulls.is_none(), "no value equals the fill");
        assert_eq!((values[0], values[3]), (3.0, 15.0));
        // A long field with one missing value near its end (past the first blocks).
        let mut long = vec![0.5_f64; 10_000];
        long[9_999] = -1.0;
        let (_, nulls) = decode(long, Some(-1.0), None, None, None, |v| v, |v| v);
        assert_eq!(nulls.map(|nulls| nulls.null_count()), Some(1));
    }

    #[test]
    fn chunks_along_another_dimension() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("grid.nc");
        let meta = sample_meta();
        let values: Vec<Option<f32>> = (0..24).map(|i| Some(i as f32)).collect();
        write(&path, &[vec![meta.batch(&[0.0, 1.0], values).expect("batch")]]).expect("write");
        let by_lat = read_rows(&path, "x_wind", Some("latitude"), 1, Some(2)).expect("read");
        let grid = GridBatch::new(&by_lat).expect("grid");
        assert_eq!(grid.meta().row_dim, "latitude");
        assert_eq!(
            grid.meta().inner.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["time", "longitude"]
        );
        // latitude index 1: time 0 → values 4..8, time 1 → 16..20.
        assert_eq!(grid.values_f64(), vec![4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0]);
        // Written back, it is the same file content.
        let out = dir.path().join("back.nc");
        let all = read_rows(&path, "x_wind", Some("latitude"), 0, Some(3)).expect("read");
        write(&out, &[vec![all]]).expect("write back");
        let again = read_rows(&out, "x_wind", Some("time"), 0, Some(2)).expect("read back");
        assert_eq!(
            GridBatch::new(&again).expect("grid").values_f64(),
            (0..24).map(f64::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wind.nc");
        let meta = sample_meta();
        write(&path, &[vec![meta.batch(&[0.0], vec![Some(1.0); 12]).expect("batch")]]).expect("write");
        let error = inspect(&path, "y_wind", None).expect_err("an error").to_string();
        assert!(
            error.contains("no variable \"y_wind\"") && error.contains("x_wind"),
            "{error}"
        );
        let error = inspect(&path, "x_wind", Some("height"))
            .expect_err("an error")
            .to_string();
        assert!(error.contains("no dimension \"height\""), "{error}");
        let error = read_rows(&path, "x_wind", None, 0, Some(5))
            .expect_err("an error")
            .to_string();
        assert!(error.contains("rows 0..5"), "{error}");
        let error = inspect("s3://bucket/x.nc".as_ref(), "x", None)
            .expect_err("an error")
            .to_string();
        assert!(error.contains("local or mounted path"), "{error}");
        let error = inspect(&dir.path().join("none.nc"), "x", None)
            .expect_err("an error")
            .to_string();
        assert!(error.contains("no such file"), "{error}");
        std::fs::write(dir.path().join("bad.nc"), b"not netcdf").expect("write");
        let error = inspect(&dir.path().join("bad.nc"), "x", None)
            .expect_err("an error")
            .to_string();
        assert!(error.contains("cannot open as NetCDF"), "{error}");
    }
}
