//! `regrid(x, lats, lons)`: bilinear interpolation of every row of a gridded chunk
//! onto a target latitude/longitude grid.
//!
//! - The source grid is [`GridMeta::lat_lon`]'s: the last two inner dimensions, the
//!   latitude strictly ascending or descending, the longitude strictly ascending. Any
//!   other inner dimension (a height level) is looped over.
//! - `lats` and `lons` are JSON arrays of numbers (`"[50.0, 50.5, 51.0]"`, any order)
//!   or `"start:stop:step"`: `start`, `start + step`, … up to `stop`, which is
//!   included when it falls on a step (within 1e-9 of a step); a negative step
//!   counts down. At most 10,000,000 points per axis.
//! - Longitudes wrap around. A source whose longitudes cover the globe (`first + 360
//!   − last` within 1e-6·360 of the mean spacing) reads a target longitude modulo
//!   360 into `[first, first + 360)`, and a point between the last column and
//!   `first + 360` interpolates between the last and the first column. Otherwise a
//!   target is shifted by ±360 when that brings it inside the source range (-10
//!   reads a 0…360 grid's 350), and is outside if neither does.
//! - A target point outside the source grid is null: never extrapolated. A null
//!   among the (up to four) source neighbours with a nonzero weight gives null. A
//!   target within 1e-9 of a grid spacing of a source point is that point, and gets
//!   its value exactly.
//! - The result has the input's value type, row coordinate and variable; its
//!   [`GridMeta`] is the input's with the latitude and longitude values replaced by
//!   the target ones (their attributes kept).
//!
//! The neighbours and weights of every target row and column are computed once per
//! call, then every row (and level) is interpolated with them.

use arrow::array::{Array, BooleanBufferBuilder};
use arrow::buffer::NullBuffer;
use arrow::record_batch::RecordBatch;
use cairn_client::grid::GridMeta;
use cairn_client::ParamKind;

use super::args::{required, Args, Builtin};
use super::grid::{flat_values, grid_arg, grid_result, Flat, Real};
use super::{OpContext, OpError};

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![Builtin::new(
        "regrid",
        vec![
            required("x", ParamKind::Data),
            required("lats", ParamKind::Str),
            required("lons", ParamKind::Str),
        ],
        regrid,
    )]
}

/// The most points a target axis may have.
const MAX_AXIS_POINTS: usize = 10_000_000;

/// How close (in grid spacings) a target must be to a source point to be it.
const SNAP: f64 = 1e-9;

/// Parses a target axis: a JSON array of numbers or `start:stop:step` (module docs).
fn parse_axis(text: &str) -> Result<Vec<f64>, String> {
    let trimmed = text.trim();
    let values: Vec<f64> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|error| format!("{trimmed:?} is not a JSON array of numbers: {error}"))?
    } else {
        let parts: Vec<&str> = trimmed.split(':').collect();
        let [start, stop, step] = parts.as_slice() else {
            return Err(format!(
                "{text:?} is neither a JSON array of numbers (\"[50.0, 50.5]\") nor start:stop:step (\"50:51:0.5\")"
            ));
        };
        let number = |what: &str, part: &str| {
            part.trim()
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| format!("the {what} {part:?} of {text:?} is not a finite number"))
        };
        let (start, stop, step) = (number("start", start)?, number("stop", stop)?, number("step", step)?);
        if step == 0.0 {
            return Err(format!("the step of {text:?} is 0"));
        }
        let steps = (stop - start) / step;
        if steps < -SNAP {
            return Err(format!("in {text:?} the step {step} goes away from the stop {stop}"));
        }
        let count = (steps + SNAP).floor() + 1.0;
        if count > MAX_AXIS_POINTS as f64 {
            return Err(format!("{text:?} has more than {MAX_AXIS_POINTS} points"));
        }
        let count = count as usize;
        let mut values: Vec<f64> = (0..count).map(|index| start + index as f64 * step).collect();
        if let Some(last) = values.last_mut() {
            if (*last - stop).abs() <= SNAP * step.abs() {
                *last = stop;
            }
        }
        values
    };
    if values.is_empty() {
        return Err(format!("{text:?} has no points"));
    }
    if values.len() > MAX_AXIS_POINTS {
        return Err(format!("{text:?} has more than {MAX_AXIS_POINTS} points"));
    }
    Ok(values)
}

/// Where a target point reads the source along one axis: `w0 · v[i0] + w1 · v[i1]`.
/// On a source point `i1 == i0` and `w1 == 0`, so only one neighbour counts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f64,
    w1: f64,
}

impl Tap {
    /// Exactly source point `index`.
    fn exact(index: usize) -> Tap {
        Tap {
            i0: index,
            i1: index,
            w0: 1.0,
            w1: 0.0,
        }
    }

    /// Between `i0` and `i1`, `w1` of the way (snapped to either end when within
    /// [`SNAP`]).
    fn between(i0: usize, i1: usize, w1: f64) -> Tap {
        if w1 <= SNAP {
            Tap::exact(i0)
        } else if w1 >= 1.0 - SNAP {
            Tap::exact(i1)
        } else {
            Tap {
                i0,
                i1,
                w0: 1.0 - w1,
                w1,
            }
        }
    }
}

/// Where `target` falls on the strictly ascending `source`: `None` if outside (or
/// NaN).
fn ascending_tap(source: &[f64], target: f64) -> Option<Tap> {
    let (first, last) = (*source.first()?, *source.last()?);
    let count = source.len();
    let tolerance = if count > 1 {
        SNAP * (last - first) / (count - 1) as f64
    } else {
        SNAP * first.abs().max(1.0)
    };
    if !(target >= first - tolerance && target <= last + tolerance) {
        return None;
    }
    if target <= first {
        return Some(Tap::exact(0));
    }
    if target >= last {
        return Some(Tap::exact(count - 1));
    }
    // source[upper - 1] ≤ target < source[upper], 1 ≤ upper < count.
    let upper = source.partition_point(|&value| value <= target);
    let lower = upper - 1;
    Some(Tap::between(
        lower,
        upper,
        (target - source[lower]) / (source[upper] - source[lower]),
    ))
}

/// The first index at which `values` stops rising strictly, if any.
fn not_ascending(values: &[f64]) -> Option<usize> {
    values
        .windows(2)
        .position(|pair| pair[0].partial_cmp(&pair[1]) != Some(std::cmp::Ordering::Less))
        .map(|index| index + 1)
}

/// The taps of each target latitude on a source latitude that ascends or descends.
fn latitude_taps(source: &[f64], targets: &[f64]) -> Result<Vec<Option<Tap>>, String> {
    // Descending latitudes are ascending once negated (exactly), with the same indexes.
    let descending = source.len() >= 2 && source[1] < source[0];
    let oriented: Vec<f64> = if descending {
        source.iter().map(|value| -value).collect()
    } else {
        source.to_vec()
    };
    if let Some(index) = not_ascending(&oriented) {
        return Err(format!(
            "the source latitudes must be strictly ascending or descending, but [{}] is {} after {}",
            index,
            source[index],
            source[index - 1]
        ));
    }
    let sign = if descending { -1.0 } else { 1.0 };
    Ok(targets
        .iter()
        .map(|&target| ascending_tap(&oriented, sign * target))
        .collect())
}

/// Whether ascending longitudes cover the globe: the gap from the last one round to
/// the first is one more step of the grid.
fn is_global(source: &[f64]) -> Option<f64> {
    let (first, last) = (*source.first()?, *source.last()?);
    if source.len() < 2 {
        return None;
    }
    let step = (last - first) / (source.len() - 1) as f64;
    let gap = first + 360.0 - last;
    (gap > 0.0 && (gap - step).abs() <= 1e-6 * 360.0).then_some(gap)
}

/// The taps of each target longitude on strictly ascending source longitudes, with
/// the wrap-around of the module docs.
fn longitude_taps(source: &[f64], targets: &[f64]) -> Result<Vec<Option<Tap>>, String> {
    if let Some(index) = not_ascending(source) {
        return Err(format!(
            "the source longitudes must be strictly ascending, but [{}] is {} after {}",
            index,
            source[index],
            source[index - 1]
        ));
    }
    let Some((&first, &last)) = source.first().zip(source.last()) else {
        return Ok(vec![None; targets.len()]);
    };
    let global = is_global(source);
    let tap = |target: f64| -> Option<Tap> {
        if target.is_nan() {
            return None;
        }
        match global {
            Some(gap) => {
                let mut wrapped = first + (target - first).rem_euclid(360.0);
                if wrapped >= first + 360.0 {
                    wrapped = first;
                }
                if wrapped <= last {
                    ascending_tap(source, wrapped)
                } else {
                    Some(Tap::between(source.len() - 1, 0, (wrapped - last) / gap))
                }
            }
            None => [target, target + 360.0, target - 360.0]
                .into_iter()
                .find_map(|shifted| ascending_tap(source, shifted)),
        }
    };
    Ok(targets.iter().map(|&target| tap(target)).collect())
}

/// The source planes' shape and the taps of the target grid.
struct Plan<'a> {
    /// Planes: rows × the sizes of the inner dimensions before latitude.
    planes: usize,
    /// Source latitudes.
    lat_size: usize,
    /// Source longitudes.
    lon_size: usize,
    /// Per target latitude.
    lat_taps: &'a [Option<Tap>],
    /// Per target longitude.
    lon_taps: &'a [Option<Tap>],
}

/// Every plane of `values` interpolated onto the target grid: the values and nulls.
fn interpolate<R: Real>(
    values: &[R],
    nulls: Option<&NullBuffer>,
    plan: &Plan<'_>,
    check_cancelled: &dyn Fn() -> Result<(), OpError>,
) -> Result<(Vec<R>, Option<NullBuffer>), OpError> {
    let nulls = nulls.filter(|nulls| nulls.null_count() > 0);
    let plane = plan.lat_size * plan.lon_size;
    let columns = plan.lon_taps.len();
    let total = plan.planes * plan.lat_taps.len() * columns;
    let mut out: Vec<R> = Vec::with_capacity(total);
    let mut valid = BooleanBufferBuilder::new(total);
    for index in 0..plan.planes {
        check_cancelled()?;
        let base = index * plane;
        let Some(source) = values.get(base..base + plane) else {
            break;
        };
        for lat in plan.lat_taps {
            let Some(lat) = lat else {
                out.resize(out.len() + columns, R::ZERO);
                valid.append_n(columns, false);
                continue;
            };
            let (start0, start1) = (lat.i0 * plan.lon_size, lat.i1 * plan.lon_size);
            let row0 = &source[start0..start0 + plan.lon_size];
            let row1 = &source[start1..start1 + plan.lon_size];
            for lon in plan.lon_taps {
                let Some(lon) = lon else {
                    out.push(R::ZERO);
                    valid.append(false);
                    continue;
                };
                let ok = nulls.is_none_or(|nulls| {
                    let (first, second) = (base + start0, base + start1);
                    nulls.is_valid(first + lon.i0)
                        && nulls.is_valid(first + lon.i1)
                        && nulls.is_valid(second + lon.i0)
                        && nulls.is_valid(second + lon.i1)
                });
                if ok {
                    // With i1 == i0 and w1 == 0 on a source point: exactly its value.
                    let top = lon.w0 * row0[lon.i0].to_f64() + lon.w1 * row0[lon.i1].to_f64();
                    let bottom = lon.w0 * row1[lon.i0].to_f64() + lon.w1 * row1[lon.i1].to_f64();
                    out.push(R::from_f64(lat.w0 * top + lat.w1 * bottom));
                } else {
                    out.push(R::ZERO);
                }
                valid.append(ok);
            }
        }
    }
    let nulls = Some(NullBuffer::new(valid.finish())).filter(|nulls| nulls.null_count() > 0);
    Ok((out, nulls))
}

/// `regrid(x, lats, lons)`: each row of `x` interpolated onto the target grid.
fn regrid(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let x = grid_arg(args, 0, "x")?;
    let lats = parse_axis(args.str(1, "lats")?).map_err(|reason| args.invalid("lats", reason))?;
    let lons = parse_axis(args.str(2, "lons")?).map_err(|reason| args.invalid("lons", reason))?;
    let meta: &GridMeta = x.meta();
    let (lat, lon) = meta.lat_lon().map_err(|error| args.invalid("x", error.to_string()))?;
    let lat_taps = latitude_taps(&lat.values, &lats)
        .map_err(|reason| args.invalid("x", format!("{} of {}: {reason}", lat.name, meta.variable)))?;
    let lon_taps = longitude_taps(&lon.values, &lons)
        .map_err(|reason| args.invalid("x", format!("{} of {}: {reason}", lon.name, meta.variable)))?;
    let inner = meta.inner.len();
    let levels: usize = meta.inner[..inner - 2].iter().map(|coord| coord.len()).product();
    let plan = Plan {
        planes: x.rows() * levels,
        lat_size: lat.len(),
        lon_size: lon.len(),
        lat_taps: &lat_taps,
        lon_taps: &lon_taps,
    };
    let mut result_meta = meta.clone();
    result_meta.inner[inner - 2].values = lats;
    result_meta.inner[inner - 1].values = lons;
    let check_cancelled = || context.check_cancelled(args.op);
    match flat_values(args, "x", &x)? {
        Flat::F32(values) => {
            let (out, nulls) = interpolate(values.values(), values.nulls(), &plan, &check_cancelled)?;
            grid_result(args, &result_meta, x.row_coord(), out, nulls)
        }
        Flat::F64(values) => {
            let (out, nulls) = interpolate(values.values(), values.nulls(), &plan, &check_cancelled)?;
            grid_result(args, &result_meta, x.row_coord(), out, nulls)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::grid::options;
    use crate::ops::{OpRegistry, OpValue};
    use arrow::array::Float64Array;
    use arrow::datatypes::{DataType, Float64Type};
    use cairn_client::grid::{AttrValue, Coord, GridBatch};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn regrid_of(x: &RecordBatch, lats: &str, lons: &str) -> Result<RecordBatch, OpError> {
        run(
            "regrid",
            vec![OpValue::Data(x.clone()), OpValue::from(lats), OpValue::from(lons)],
        )
    }

    /// Latitudes `lats`, longitudes 0, 90, 180, 270 (global); value = 10·lat + lon/90
    /// + 100·row.
    fn source(lats: &[f64], rows: usize) -> RecordBatch {
        let mut lat = Coord::new("latitude", lats.to_vec());
        lat.attrs.insert("units".into(), AttrValue::from("degrees_north"));
        let meta = GridMeta::new(
            "t",
            "time",
            vec![lat, Coord::new("longitude", vec![0.0, 90.0, 180.0, 270.0])],
        );
        let mut values = Vec::new();
        for row in 0..rows {
            for &lat in lats {
                for lon in 0..4 {
                    values.push(Some((100 * row) as f32 + 10.0 * lat as f32 + lon as f32));
                }
            }
        }
        let coord: Vec<f64> = (0..rows).map(|row| row as f64).collect();
        meta.batch(&coord, values).expect("batch")
    }

    fn value(lat: f64, lon_index: f64, row: usize) -> f64 {
        100.0 * row as f64 + 10.0 * lat + lon_index
    }

    #[test]
    fn target_axes_parse() {
        assert_eq!(parse_axis("[50.0, 50.5, 51]").expect("json"), [50.0, 50.5, 51.0]);
        assert_eq!(parse_axis("50:51:0.5").expect("range"), [50.0, 50.5, 51.0]);
        assert_eq!(
            parse_axis("0:1:0.3").expect("range"),
            [0.0, 0.3, 0.6, 0.8999999999999999]
        );
        assert_eq!(parse_axis(" 10 : 0 : -5 ").expect("down"), [10.0, 5.0, 0.0]);
        assert_eq!(
            parse_axis("0:0.9:0.1").expect("range").last(),
            Some(&0.9),
            "stop snapped"
        );
        assert_eq!(parse_axis("3:3:1").expect("one"), [3.0]);
        for bad in [
            "",
            "[]",
            "[1, \"a\"]",
            "1:2",
            "1:2:0",
            "2:1:1",
            "a:2:1",
            "0:1:1e-12",
            "1:2:3:4",
        ] {
            assert!(parse_axis(bad).is_err(), "{bad:?}");
        }
        assert!(parse_axis("1:2:0").expect_err("zero").contains("step"));
    }

    #[test]
    fn grid_points_are_exact_and_between_them_bilinear() {
        let x = source(&[0.0, 1.0, 2.0], 2);
        let same = regrid_of(&x, "[0, 1, 2]", "0:270:90").expect("same grid");
        assert_eq!(options(&same), options(&x), "on the source points: the same values");
        assert_eq!(GridBatch::new(&same).expect("grid").value_type(), DataType::Float32);

        let result = regrid_of(&x, "[0.5, 0.25]", "[45, 135]").expect("regrid");
        let grid = GridBatch::new(&result).expect("grid");
        assert_eq!(grid.meta().inner[0].values, [0.5, 0.25]);
        assert_eq!(grid.meta().inner[1].values, [45.0, 135.0]);
        assert_eq!(
            grid.meta().inner[0].attrs["units"],
            AttrValue::from("degrees_north"),
            "coordinate attributes kept"
        );
        assert_eq!(grid.row_coord(), &[0.0, 1.0]);
        let values = options(&result);
        // (0.5, 45): the mean of (0,0)=0, (0,90)=1, (1,0)=10, (1,90)=11.
        assert_eq!(values[0], Some(5.5));
        // (0.5, 135): between lon index 1 and 2, half way: 5 + 1.5.
        assert_eq!(values[1], Some(6.5));
        // (0.25, 45): 0.75·0.5 + 0.25·10.5 = 3.0.
        assert_eq!(values[2], Some(3.0));
        assert_eq!(values[4], Some(value(0.5, 0.5, 1)));
        // A hand-computed, uneven point: (0.3, 30) → lat weight 0.3, lon weight 1/3.
        let point = regrid_of(&x, "[0.3]", "[30]").expect("regrid");
        let want = 0.7 * (2.0 / 3.0 * 0.0 + 1.0 / 3.0 * 1.0) + 0.3 * (2.0 / 3.0 * 10.0 + 1.0 / 3.0 * 11.0);
        let got = options(&point)[0].expect("value");
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn longitudes_wrap_around() {
        let x = source(&[0.0, 1.0], 1);
        // 315 and -45: half way between 270 (index 3) and 360 = 0 (index 0).
        let result = regrid_of(&x, "[0]", "[315, -45, 360, 810, -360, 359.9999999999]").expect("wrap");
        let values = options(&result);
        assert_eq!(values[0], Some(1.5));
        assert_eq!(values[1], Some(1.5));
        assert_eq!(values[2], Some(0.0), "360 is 0");
        assert_eq!(values[3], Some(1.0), "810 is 90");
        assert_eq!(values[4], Some(0.0));
        assert_eq!(values[5], Some(0.0), "within 1e-9 spacing of 360: the first column");
        // Not global: 0, 10, 20 — only ±360 shifts that land inside.
        let meta = GridMeta::new(
            "t",
            "time",
            vec![Coord::new("lat", vec![0.0]), Coord::new("lon", vec![0.0, 10.0, 20.0])],
        );
        let regional = meta
            .batch_of::<Float64Type>(&[0.0], Float64Array::from(vec![1.0, 2.0, 3.0]))
            .expect("batch");
        let result = regrid_of(&regional, "[0]", "[365, -355, -5, 25, 20, 180]").expect("regional");
        assert_eq!(options(&result), [Some(1.5), Some(1.5), None, None, Some(3.0), None]);
        assert_eq!(GridBatch::new(&result).expect("grid").value_type(), DataType::Float64);
        // A source with both 0 and 360 is not "global" by the gap rule, but -10 still
        // reads 350 and 360 reads 360.
        let meta = GridMeta::new(
            "t",
            "time",
            vec![Coord::new("lat", vec![0.0]), Coord::new("lon", vec![0.0, 180.0, 360.0])],
        );
        let closed = meta
            .batch_of::<Float64Type>(&[0.0], Float64Array::from(vec![0.0, 18.0, 36.0]))
            .expect("batch");
        let result = regrid_of(&closed, "[0]", "[-10, 360]").expect("closed");
        let values = options(&result);
        assert!((values[0].expect("value") - 35.0).abs() < 1e-12);
        assert_eq!(values[1], Some(36.0));
    }

    #[test]
    fn outside_is_null_and_descending_latitudes_work() {
        let x = source(&[0.0, 1.0, 2.0], 1);
        let result = regrid_of(&x, "[-0.5, 2.5, 1.5]", "[0, 90]").expect("regrid");
        assert_eq!(options(&result), [None, None, None, None, Some(15.0), Some(16.0)]);

        let descending = source(&[2.0, 1.0, 0.0], 1);
        let down = regrid_of(&descending, "[0.5, 0.25, 2, 3]", "[45, 135]").expect("descending");
        let up = regrid_of(&x, "[0.5, 0.25, 2, 3]", "[45, 135]").expect("ascending");
        assert_eq!(options(&down), options(&up));
        assert_eq!(options(&down)[..2], [Some(5.5), Some(6.5)]);
        assert_eq!(options(&down)[6..], [None, None]);
    }

    #[test]
    fn null_neighbours_with_weight_give_null() {
        let meta = GridMeta::new(
            "t",
            "time",
            vec![
                Coord::new("level", vec![850.0, 500.0]),
                Coord::new("latitude", vec![0.0, 1.0]),
                Coord::new("longitude", vec![0.0, 1.0]),
            ],
        );
        // Level 850: (0,0)=1 (0,1)=null (1,0)=3 (1,1)=4; level 500: 10 20 30 40.
        let values = vec![
            Some(1.0),
            None,
            Some(3.0),
            Some(4.0),
            Some(10.0),
            Some(20.0),
            Some(30.0),
            Some(40.0),
        ];
        let x = meta.batch(&[0.0], values).expect("batch");
        let result = regrid_of(&x, "[0, 0.5]", "[0, 0.5]").expect("regrid");
        let grid = GridBatch::new(&result).expect("grid");
        assert_eq!(grid.meta().shape(1), [1, 2, 2, 2]);
        assert_eq!(
            options(&result),
            [
                Some(1.0),
                None,
                Some(2.0),
                None,
                Some(10.0),
                Some(15.0),
                Some(20.0),
                Some(25.0)
            ],
            "(0, 0) is exact next to the null; (0, 0.5), (0.5, 0.5) touch it; (0.5, 0) does not"
        );
    }

    #[test]
    fn regrid_errors_say_what_is_wrong() {
        let x = source(&[0.0, 1.0], 1);
        let message =
            |x: &RecordBatch, lats: &str, lons: &str| regrid_of(x, lats, lons).expect_err("error").to_string();
        assert_eq!(
            message(&x, "0..1", "[0]"),
            "regrid: argument lats: \"0..1\" is neither a JSON array of numbers (\"[50.0, 50.5]\") nor start:stop:step (\"50:51:0.5\")"
        );
        assert!(message(&x, "[0]", "[1,").starts_with("regrid: argument lons: \"[1,\" is not a JSON array of numbers"));
        let meta = GridMeta::new(
            "t",
            "time",
            vec![Coord::new("lat", vec![0.0, 1.0]), Coord::new("lon", vec![10.0, 0.0])],
        );
        let unordered = meta
            .batch_of::<Float64Type>(&[0.0], Float64Array::from(vec![0.0; 4]))
            .expect("batch");
        assert_eq!(
            message(&unordered, "[0]", "[0]"),
            "regrid: argument x: lon of t: the source longitudes must be strictly ascending, but [1] is 0 after 10"
        );
        let meta = GridMeta::new(
            "t",
            "time",
            vec![Coord::new("lat", vec![0.0, 1.0, 0.5]), Coord::new("lon", vec![0.0])],
        );
        let zigzag = meta
            .batch_of::<Float64Type>(&[0.0], Float64Array::from(vec![0.0; 3]))
            .expect("batch");
        assert_eq!(
            message(&zigzag, "[0]", "[0]"),
            "regrid: argument x: lat of t: the source latitudes must be strictly ascending or descending, but [2] is 0.5 after 1"
        );
        let meta = GridMeta::new(
            "t",
            "time",
            vec![Coord::new("x", vec![0.0]), Coord::new("y", vec![0.0])],
        );
        let plain = meta
            .batch_of::<Float64Type>(&[0.0], Float64Array::from(vec![0.0]))
            .expect("batch");
        assert_eq!(
            message(&plain, "[0]", "[0]"),
            "regrid: argument x: t: the last two dimensions must be latitude and longitude (by name, standard_name or units), found [x, y]"
        );
    }
}
