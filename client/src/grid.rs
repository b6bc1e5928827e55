//! Gridded data (SPEC §5): how an N-dimensional field (time × latitude × longitude, or
//! any dimensions) is a collection of Arrow batches.
//!
//! A gridded collection is chunked along one dimension, its **row dimension** (time
//! by default). Every chunk is a [`RecordBatch`] with one row per index along that
//! dimension and two columns:
//!
//! 1. the row dimension's coordinate, `Float64`, named after the dimension (`time`),
//!    its field metadata holding the coordinate's attributes (`units`, `calendar`…);
//! 2. the variable, named after it (`x_wind`): a `FixedSizeList` of `Float32` (or
//!    `Float64` for double-precision variables) holding the whole field at that
//!    index of the row dimension, in C order over the **inner dimensions** (the
//!    variable's other dimensions, in storage order). Missing values (NetCDF's
//!    `_FillValue`, points outside a regridding's source grid) are nulls of the list's
//!    values; the list itself is never null. The field metadata holds the variable's
//!    text attributes (`units`, `standard_name`…), for any Arrow reader.
//!
//! The schema metadata key [`GRID_METADATA_KEY`] holds a [`GridMeta`] as JSON: the
//! variable, its dimensions in storage order, the inner dimensions' coordinate values
//! and attributes, and every attribute of the variable and of its file. It is the same
//! for every chunk of a collection (nothing in it depends on the chunk), so a
//! collection keeps one schema, and `cairn datasets info` shows a published grid's
//! coordinates, units and shape without reading data.
//!
//! ```
//! use cairn_client::grid::{Coord, GridBatch, GridMeta};
//!
//! let meta = GridMeta::new("t", "time", vec![
//!     Coord::new("latitude", vec![-1.0, 1.0]),
//!     Coord::new("longitude", vec![0.0, 1.0, 2.0]),
//! ]);
//! let values: Vec<Option<f32>> = (0..12).map(|i| Some(i as f32)).collect();
//! let batch = meta.batch(&[0.0, 1.0], values).unwrap();
//! let grid = GridBatch::new(&batch).unwrap();
//! assert_eq!(grid.meta().shape(2), vec![2, 2, 3]);
//! assert_eq!(grid.row_coord(), &[0.0, 1.0]);
//! assert_eq!(grid.values_f64()[7], 7.0);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, PrimitiveArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Float32Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// The schema metadata key holding a gridded collection's [`GridMeta`] (JSON).
pub const GRID_METADATA_KEY: &str = "cairn.grid";

/// An attribute value as NetCDF has them: text, or one or more numbers.
///
/// ```
/// use cairn_client::grid::AttrValue;
/// let units = AttrValue::from("m s-1");
/// assert_eq!(units.as_text(), Some("m s-1"));
/// assert_eq!(serde_json::to_string(&AttrValue::Numbers(vec![1.5])).unwrap(), "[1.5]");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A text attribute (`units`, `standard_name`, `calendar`, `cell_methods`…).
    Text(String),
    /// A numeric attribute (`valid_range`, a model's level…), as `f64`s.
    Numbers(Vec<f64>),
}

impl AttrValue {
    /// The text, if this is a text attribute.
    ///
    /// ```
    /// assert_eq!(cairn_client::grid::AttrValue::Numbers(vec![]).as_text(), None);
    /// ```
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttrValue::Text(text) => Some(text),
            AttrValue::Numbers(_) => None,
        }
    }

    /// The value as people read it: text as is, numbers separated by commas.
    ///
    /// ```
    /// assert_eq!(cairn_client::grid::AttrValue::Numbers(vec![1.0, 2.5]).display(), "1, 2.5");
    /// ```
    pub fn display(&self) -> String {
        match self {
            AttrValue::Text(text) => text.clone(),
            AttrValue::Numbers(numbers) => numbers.iter().map(f64::to_string).collect::<Vec<_>>().join(", "),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(text: &str) -> AttrValue {
        AttrValue::Text(text.to_string())
    }
}

/// Attributes by name, sorted.
pub type Attrs = BTreeMap<String, AttrValue>;

/// A coordinate: a dimension's name, its values (one per index), its attributes.
///
/// ```
/// let lat = cairn_client::grid::Coord::new("latitude", vec![-90.0, 0.0, 90.0]);
/// assert_eq!(lat.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coord {
    /// The dimension's name (`latitude`).
    pub name: String,
    /// The coordinate value at each index (a dimension without a coordinate variable
    /// gets 0, 1, 2…).
    pub values: Vec<f64>,
    /// The coordinate variable's attributes (`units`, `standard_name`, `axis`…).
    #[serde(default)]
    pub attrs: Attrs,
}

impl Coord {
    /// A coordinate without attributes.
    ///
    /// ```
    /// assert!(cairn_client::grid::Coord::new("x", vec![]).is_empty());
    /// ```
    pub fn new(name: &str, values: Vec<f64>) -> Coord {
        Coord {
            name: name.to_string(),
            values,
            attrs: Attrs::new(),
        }
    }

    /// The number of indexes along the dimension.
    ///
    /// ```
    /// assert_eq!(cairn_client::grid::Coord::new("x", vec![1.0]).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the dimension has no index.
    ///
    /// ```
    /// assert!(!cairn_client::grid::Coord::new("x", vec![1.0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether this is a latitude (by name, `standard_name` or `units`).
    ///
    /// ```
    /// use cairn_client::grid::Coord;
    /// assert!(Coord::new("lat", vec![]).is_latitude());
    /// assert!(!Coord::new("longitude", vec![]).is_latitude());
    /// ```
    pub fn is_latitude(&self) -> bool {
        self.looks_like(&["latitude", "lat", "grid_latitude"], "degrees_north")
    }

    /// Whether this is a longitude (by name, `standard_name` or `units`).
    ///
    /// ```
    /// use cairn_client::grid::Coord;
    /// assert!(Coord::new("lon", vec![]).is_longitude());
    /// ```
    pub fn is_longitude(&self) -> bool {
        self.looks_like(&["longitude", "lon", "grid_longitude"], "degrees_east")
    }

    fn looks_like(&self, names: &[&str], units: &str) -> bool {
        let text = |key: &str| self.attrs.get(key).and_then(AttrValue::as_text);
        names.contains(&self.name.as_str())
            || text("standard_name").is_some_and(|name| names.contains(&name))
            || text("units").is_some_and(|unit| unit == units)
    }
}

/// What every chunk of a gridded collection says about its grid (module docs).
///
/// ```
/// use cairn_client::grid::{Coord, GridMeta};
/// let meta = GridMeta::new("x_wind", "time", vec![Coord::new("latitude", vec![0.0, 1.0])]);
/// assert_eq!(meta.dims, ["time", "latitude"]);
/// assert_eq!(meta.cells(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridMeta {
    /// The variable (the name of the value column).
    pub variable: String,
    /// The dimension the rows run along (the name of the coordinate column).
    pub row_dim: String,
    /// Every dimension of the variable in storage order (the row dimension included):
    /// the order a NetCDF file written from the collection uses.
    pub dims: Vec<String>,
    /// The other dimensions, in storage order: each row's values are in C order over
    /// these.
    pub inner: Vec<Coord>,
    /// The variable's attributes (`units`, `standard_name`, `long_name`,
    /// `cell_methods`…; packing attributes are applied when read and not kept).
    #[serde(default)]
    pub attrs: Attrs,
    /// The row dimension's coordinate attributes (also on the coordinate column).
    #[serde(default)]
    pub row_attrs: Attrs,
    /// The file's global attributes (`title`, `source`, `history`…).
    #[serde(default)]
    pub global_attrs: Attrs,
}

/// Why a batch is not a gridded chunk, or two grids do not line up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct GridError(pub String);

/// A client call's error: invalid input (grids that do not line up, data that is not
/// gridded).
impl From<GridError> for crate::Error {
    fn from(error: GridError) -> crate::Error {
        crate::Error::InvalidArgument { message: error.0 }
    }
}

fn grid_error(message: impl Into<String>) -> GridError {
    GridError(message.into())
}

impl GridMeta {
    /// A grid of `variable` chunked along `row_dim`, the other dimensions `inner` in
    /// storage order after it; no attributes.
    ///
    /// ```
    /// let meta = cairn_client::grid::GridMeta::new("v", "time", vec![]);
    /// assert_eq!(meta.cells(), 1);
    /// ```
    pub fn new(variable: &str, row_dim: &str, inner: Vec<Coord>) -> GridMeta {
        let mut dims = vec![row_dim.to_string()];
        dims.extend(inner.iter().map(|coord| coord.name.clone()));
        GridMeta {
            variable: variable.to_string(),
            row_dim: row_dim.to_string(),
            dims,
            inner,
            attrs: Attrs::new(),
            row_attrs: Attrs::new(),
            global_attrs: Attrs::new(),
        }
    }

    /// Values per row: the product of the inner dimensions' sizes.
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let meta = GridMeta::new("v", "time", vec![Coord::new("a", vec![0.0; 3]), Coord::new("b", vec![0.0; 4])]);
    /// assert_eq!(meta.cells(), 12);
    /// ```
    pub fn cells(&self) -> usize {
        self.inner.iter().map(Coord::len).product()
    }

    /// The shape with `rows` along the row dimension, in the order of
    /// [`GridMeta::dims`].
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let meta = GridMeta::new("v", "time", vec![Coord::new("lat", vec![0.0; 3])]);
    /// assert_eq!(meta.shape(5), vec![5, 3]);
    /// ```
    pub fn shape(&self, rows: usize) -> Vec<usize> {
        self.dims
            .iter()
            .map(|dim| {
                if *dim == self.row_dim {
                    rows
                } else {
                    self.inner.iter().find(|coord| coord.name == *dim).map_or(1, Coord::len)
                }
            })
            .collect()
    }

    /// The inner dimension called `name`, with its position among the inner ones.
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let meta = GridMeta::new("v", "time", vec![Coord::new("lat", vec![0.0])]);
    /// assert_eq!(meta.inner_dim("lat").map(|(i, _)| i), Some(0));
    /// ```
    pub fn inner_dim(&self, name: &str) -> Option<(usize, &Coord)> {
        self.inner.iter().enumerate().find(|(_, coord)| coord.name == name)
    }

    /// The positions of the latitude and longitude among the inner dimensions: they
    /// must be the last two (latitude, then longitude), as regridding needs.
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let meta = GridMeta::new("v", "time", vec![Coord::new("latitude", vec![0.0]), Coord::new("longitude", vec![0.0])]);
    /// assert!(meta.lat_lon().is_ok());
    /// assert!(GridMeta::new("v", "time", vec![]).lat_lon().is_err());
    /// ```
    pub fn lat_lon(&self) -> Result<(&Coord, &Coord), GridError> {
        let count = self.inner.len();
        if count >= 2 && self.inner[count - 2].is_latitude() && self.inner[count - 1].is_longitude() {
            return Ok((&self.inner[count - 2], &self.inner[count - 1]));
        }
        let names: Vec<&str> = self.inner.iter().map(|coord| coord.name.as_str()).collect();
        Err(grid_error(format!(
            "{}: the last two dimensions must be latitude and longitude (by name, standard_name or units), found [{}]",
            self.variable,
            names.join(", ")
        )))
    }

    /// `Ok` if `other` has the same inner dimensions (names, sizes and coordinate
    /// values within 1e-6 relative) and row dimension; else an error saying how the
    /// two grids differ (the first difference found).
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let a = GridMeta::new("u", "time", vec![Coord::new("lat", vec![0.0, 1.0])]);
    /// let b = GridMeta::new("v", "time", vec![Coord::new("lat", vec![0.0, 2.0])]);
    /// let error = a.check_aligned(&b).expect_err("an error");
    /// assert!(error.to_string().contains("lat[1] is 1 in u but 2 in v"), "{error}");
    /// ```
    pub fn check_aligned(&self, other: &GridMeta) -> Result<(), GridError> {
        let (a, b) = (&self.variable, &other.variable);
        if self.row_dim != other.row_dim {
            return Err(grid_error(format!(
                "grids of {a} and {b} do not line up: {a} is chunked along {} but {b} along {}",
                self.row_dim, other.row_dim
            )));
        }
        let names = |meta: &GridMeta| meta.inner.iter().map(|coord| coord.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            return Err(grid_error(format!(
                "grids of {a} and {b} do not line up: {a} has dimensions [{}] but {b} has [{}]",
                names(self).join(", "),
                names(other).join(", ")
            )));
        }
        for (left, right) in self.inner.iter().zip(&other.inner) {
            if left.len() != right.len() {
                return Err(grid_error(format!(
                    "grids of {a} and {b} do not line up: {} has {} points in {a} but {} in {b}",
                    left.name,
                    left.len(),
                    right.len()
                )));
            }
            if let Some(index) = (0..left.len()).find(|&i| !close(left.values[i], right.values[i])) {
                return Err(grid_error(format!(
                    "grids of {a} and {b} do not line up: {}[{index}] is {} in {a} but {} in {b}",
                    left.name, left.values[index], right.values[index]
                )));
            }
        }
        Ok(())
    }

    /// The grid described for people and for dataset attributes, from metadata
    /// alone: `variable`, `dims`, `shape` (with `rows` along the row dimension), the
    /// variable's attributes, and each inner coordinate's range and units.
    ///
    /// ```
    /// use cairn_client::grid::{Coord, GridMeta};
    /// let meta = GridMeta::new("t", "time", vec![Coord::new("latitude", vec![-90.0, 0.0, 90.0])]);
    /// let summary = meta.summary(4);
    /// assert_eq!(summary["shape"], "4 x 3");
    /// assert_eq!(summary["latitude_range"], "-90 .. 90");
    /// ```
    pub fn summary(&self, rows: usize) -> BTreeMap<String, String> {
        let mut summary = BTreeMap::new();
        summary.insert("variable".to_string(), self.variable.clone());
        summary.insert("dims".to_string(), self.dims.join(", "));
        let shape: Vec<String> = self.shape(rows).iter().map(usize::to_string).collect();
        summary.insert("shape".to_string(), shape.join(" x "));
        for (key, value) in &self.attrs {
            summary.insert(key.clone(), value.display());
        }
        if let Some(units) = self.row_attrs.get("units") {
            summary.insert(format!("{}_units", self.row_dim), units.display());
        }
        for coord in &self.inner {
            if let (Some(first), Some(last)) = (coord.values.first(), coord.values.last()) {
                summary.insert(format!("{}_range", coord.name), format!("{first} .. {last}"));
            }
            if let Some(units) = coord.attrs.get("units") {
                summary.insert(format!("{}_units", coord.name), units.display());
            }
        }
        summary
    }

    /// The JSON kept under [`GRID_METADATA_KEY`].
    ///
    /// ```
    /// let meta = cairn_client::grid::GridMeta::new("v", "time", vec![]);
    /// assert_eq!(cairn_client::grid::GridMeta::from_json(&meta.to_json()).unwrap(), meta);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses [`GridMeta::to_json`]'s output.
    ///
    /// ```
    /// assert!(cairn_client::grid::GridMeta::from_json("{}").is_err());
    /// ```
    pub fn from_json(json: &str) -> Result<GridMeta, GridError> {
        serde_json::from_str(json)
            .map_err(|error| grid_error(format!("malformed {GRID_METADATA_KEY} metadata: {error}")))
    }

    /// The grid of a schema, if it has one.
    ///
    /// ```
    /// let schema = arrow::datatypes::Schema::empty();
    /// assert!(cairn_client::grid::GridMeta::of_schema(&schema).is_none());
    /// ```
    pub fn of_schema(schema: &Schema) -> Option<Result<GridMeta, GridError>> {
        schema
            .metadata()
            .get(GRID_METADATA_KEY)
            .map(|json| GridMeta::from_json(json))
    }

    /// The schema of this grid's chunks, with values of `value_type` (`Float32` or
    /// `Float64`).
    ///
    /// ```
    /// use arrow::datatypes::DataType;
    /// let meta = cairn_client::grid::GridMeta::new("v", "time", vec![]);
    /// let schema = meta.schema(&DataType::Float32);
    /// assert_eq!(schema.field(0).name(), "time");
    /// assert_eq!(schema.field(1).name(), "v");
    /// ```
    pub fn schema(&self, value_type: &DataType) -> SchemaRef {
        let text_attrs = |attrs: &Attrs| -> HashMap<String, String> {
            attrs
                .iter()
                .filter_map(|(key, value)| value.as_text().map(|text| (key.clone(), text.to_string())))
                .collect()
        };
        let coord = Field::new(&self.row_dim, DataType::Float64, false).with_metadata(text_attrs(&self.row_attrs));
        let item = Arc::new(Field::new("item", value_type.clone(), true));
        let values = Field::new(
            &self.variable,
            DataType::FixedSizeList(item, i32::try_from(self.cells()).unwrap_or(i32::MAX)),
            false,
        )
        .with_metadata(text_attrs(&self.attrs));
        let metadata = HashMap::from([(GRID_METADATA_KEY.to_string(), self.to_json())]);
        Arc::new(Schema::new_with_metadata(vec![coord, values], metadata))
    }

    /// A chunk of this grid: `coord` along the row dimension, `values` (C order, one
    /// row after another) as a `Float32` list; `None` is a missing value.
    ///
    /// ```
    /// let meta = cairn_client::grid::GridMeta::new("v", "time", vec![]);
    /// assert!(meta.batch(&[0.0], vec![Some(1.0), Some(2.0)]).is_err());
    /// ```
    pub fn batch(&self, coord: &[f64], values: Vec<Option<f32>>) -> Result<RecordBatch, GridError> {
        self.batch_of::<Float32Type>(coord, Float32Array::from(values))
    }

    /// A chunk of this grid from a primitive array of values (`Float32Array` or
    /// `Float64Array`, nulls for missing values), C order, one row after another.
    ///
    /// ```
    /// use arrow::array::Float64Array;
    /// use arrow::datatypes::Float64Type;
    /// let meta = cairn_client::grid::GridMeta::new("v", "time", vec![]);
    /// let batch = meta.batch_of::<Float64Type>(&[0.0, 1.0], Float64Array::from(vec![1.0, 2.0])).unwrap();
    /// assert_eq!(batch.num_rows(), 2);
    /// ```
    pub fn batch_of<T: ArrowPrimitiveType>(
        &self,
        coord: &[f64],
        values: PrimitiveArray<T>,
    ) -> Result<RecordBatch, GridError> {
        let cells = self.cells();
        if values.len() != coord.len() * cells {
            return Err(grid_error(format!(
                "{}: {} values for {} rows of {cells} cells",
                self.variable,
                values.len(),
                coord.len()
            )));
        }
        let schema = self.schema(&T::DATA_TYPE);
        let item = Arc::new(Field::new("item", T::DATA_TYPE, true));
        let size =
            i32::try_from(cells).map_err(|_| grid_error(format!("{}: too many cells per row", self.variable)))?;
        let list = FixedSizeListArray::try_new(item, size, Arc::new(values), None)
            .map_err(|error| grid_error(format!("{}: {error}", self.variable)))?;
        let columns: Vec<ArrayRef> = vec![Arc::new(Float64Array::from(coord.to_vec())), Arc::new(list)];
        RecordBatch::try_new(schema, columns).map_err(|error| grid_error(format!("{}: {error}", self.variable)))
    }
}

/// The first index at which two coordinates (a row coordinate, or one dimension's
/// values) differ (the shorter length when one is a prefix of the other), or `None`
/// when they are the same points. Values count as
/// the same point when equal to 1e-12 relative: time coordinates in hours since 1900
/// are around 1e6, so the grid tolerance of [`GridMeta::check_aligned`] (1e-6) would
/// call two times an hour apart the same.
///
/// ```
/// use cairn_client::grid::first_coordinate_difference;
/// assert_eq!(first_coordinate_difference(&[1e6, 1e6 + 1.0], &[1e6, 1e6 + 1.0]), None);
/// assert_eq!(first_coordinate_difference(&[1e6, 1e6 + 1.0], &[1e6, 1e6 + 2.0]), Some(1));
/// assert_eq!(first_coordinate_difference(&[0.0], &[0.0, 1.0]), Some(1));
/// ```
pub fn first_coordinate_difference(a: &[f64], b: &[f64]) -> Option<usize> {
    let same = |x: f64, y: f64| x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
    (0..a.len().min(b.len()))
        .find(|&i| !same(a[i], b[i]))
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Two coordinate values that are the same point (relative 1e-6, absolute 1e-9).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

/// A gridded chunk, checked: its [`GridMeta`], row coordinate and values.
#[derive(Debug, Clone)]
pub struct GridBatch<'a> {
    batch: &'a RecordBatch,
    meta: GridMeta,
}

impl<'a> GridBatch<'a> {
    /// Checks that `batch` is a gridded chunk (module docs) and reads its metadata.
    ///
    /// ```
    /// let batch = arrow::array::RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty()));
    /// let error = cairn_client::grid::GridBatch::new(&batch).expect_err("an error");
    /// assert!(error.to_string().contains("not gridded"));
    /// ```
    pub fn new(batch: &'a RecordBatch) -> Result<GridBatch<'a>, GridError> {
        let meta = GridMeta::of_schema(batch.schema_ref()).ok_or_else(|| {
            grid_error(format!(
                "the data is not gridded: its schema has no {GRID_METADATA_KEY} metadata"
            ))
        })??;
        if batch.num_columns() != 2 {
            return Err(grid_error(format!(
                "{}: a gridded chunk has 2 columns (coordinate, values), this one {}",
                meta.variable,
                batch.num_columns()
            )));
        }
        if batch.column(0).as_any().downcast_ref::<Float64Array>().is_none() {
            return Err(grid_error(format!(
                "{}: the coordinate column is not Float64",
                meta.variable
            )));
        }
        let list = batch
            .column(1)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .ok_or_else(|| grid_error(format!("{}: the value column is not a fixed-size list", meta.variable)))?;
        if list.value_length() as usize != meta.cells() {
            return Err(grid_error(format!(
                "{}: rows of {} values on a grid of {} cells",
                meta.variable,
                list.value_length(),
                meta.cells()
            )));
        }
        if !matches!(list.value_type(), DataType::Float32 | DataType::Float64) {
            return Err(grid_error(format!(
                "{}: values of type {} (Float32 or Float64 expected)",
                meta.variable,
                list.value_type()
            )));
        }
        Ok(GridBatch { batch, meta })
    }

    /// The grid.
    pub fn meta(&self) -> &GridMeta {
        &self.meta
    }

    /// The batch.
    pub fn batch(&self) -> &'a RecordBatch {
        self.batch
    }

    /// Rows: indexes along the row dimension.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The row dimension's coordinate values.
    pub fn row_coord(&self) -> &'a [f64] {
        let column: &'a ArrayRef = self.batch.column(0);
        match column.as_any().downcast_ref::<Float64Array>() {
            Some(array) => array.values(),
            None => &[],
        }
    }

    /// The value list column.
    pub fn list(&self) -> &'a FixedSizeListArray {
        let column: &'a ArrayRef = self.batch.column(1);
        column
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .expect("checked in GridBatch::new")
    }

    /// The values (all rows, C order) as a flat array of the list's value type,
    /// sliced to this batch's rows.
    pub fn values(&self) -> ArrayRef {
        let list = self.list();
        let cells = self.meta.cells();
        list.values().slice(list.offset() * cells, list.len() * cells)
    }

    /// The values' type: `Float32` or `Float64`.
    pub fn value_type(&self) -> DataType {
        self.list().value_type()
    }

    /// The values as `f64`, a missing value as NaN (C order, rows one after another).
    pub fn values_f64(&self) -> Vec<f64> {
        let values = self.values();
        let nulls: Option<&NullBuffer> = values.nulls();
        let valid = |i: usize| nulls.is_none_or(|nulls| nulls.is_valid(i));
        if let Some(array) = values.as_any().downcast_ref::<Float32Array>() {
            array
                .values()
                .iter()
                .enumerate()
                .map(|(i, v)| if valid(i) { f64::from(*v) } else { f64::NAN })
                .collect()
        } else if let Some(array) = values.as_any().downcast_ref::<Float64Array>() {
            array
                .values()
                .iter()
                .enumerate()
                .map(|(i, v)| if valid(i) { *v } else { f64::NAN })
                .collect()
        } else {
            Vec::new()
        }
    }
}

/// Reads the one gridded array that several chunks of a collection make (in order),
/// as `f64` with missing values as NaN: its metadata, row coordinate and values.
///
/// ```
/// use cairn_client::grid::{gather_f64, Coord, GridMeta};
/// let meta = GridMeta::new("v", "time", vec![Coord::new("x", vec![0.0, 1.0])]);
/// let a = meta.batch(&[0.0], vec![Some(1.0), None]).unwrap();
/// let b = meta.batch(&[1.0], vec![Some(3.0), Some(4.0)]).unwrap();
/// let (_, coord, values) = gather_f64(&[a, b]).unwrap();
/// assert_eq!(coord, [0.0, 1.0]);
/// assert!(values[1].is_nan());
/// ```
pub fn gather_f64(batches: &[RecordBatch]) -> Result<(GridMeta, Vec<f64>, Vec<f64>), GridError> {
    let mut meta: Option<GridMeta> = None;
    let mut coord = Vec::new();
    let mut values = Vec::new();
    for batch in batches {
        let grid = GridBatch::new(batch)?;
        if let Some(first) = &meta {
            first.check_aligned(grid.meta())?;
        } else {
            meta = Some(grid.meta().clone());
        }
        coord.extend_from_slice(grid.row_coord());
        values.extend(grid.values_f64());
    }
    let meta = meta.ok_or_else(|| grid_error("no chunks to gather"))?;
    Ok((meta, coord, values))
}
