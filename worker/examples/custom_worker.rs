//! A custom worker binary: the built-in operations plus one of its own, registered
//! through the `Operation` trait (SPEC §5: "user operations registered through a
//! trait in a custom worker binary").
//!
//! The operation, `to_kelvin(x: data, column: string)`, adds a column
//! `<column>_kelvin` holding the Celsius column converted to kelvin, with Arrow's
//! compute kernels.
//!
//! Run it like `cairn worker`:
//!
//! ```text
//! cargo run -p cairn-worker --example custom_worker -- \
//!     --cluster 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 \
//!     --listen 127.0.0.1:7301 --data-dir ./.cairn/custom-worker --memory-limit 512MiB --nthreads 2
//! ```
//!
//! then, from a client, `client.task("to_kelvin", [(&table).into(), "temperature".into()])`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::compute::kernels::numeric::add;
use arrow::datatypes::{DataType, Field, Schema};
use cairn_client::{Literal, OpSignature, ParamKind, ParamSpec};
use cairn_worker::ops::{OpContext, OpError, OpRegistry, OpValue, Operation};
use cairn_worker::{parse_bytes, WorkerConfig};

/// Celsius to kelvin, as a new column.
struct ToKelvin;

impl Operation for ToKelvin {
    fn signature(&self) -> OpSignature {
        OpSignature {
            name: "to_kelvin".to_string(),
            params: vec![
                ParamSpec::required("x", ParamKind::Data),
                ParamSpec::required("column", ParamKind::Str),
            ],
            variadic: false,
        }
    }

    fn run(&self, args: Vec<OpValue>, _context: &OpContext) -> Result<RecordBatch, OpError> {
        let invalid = |reason: String| OpError::InvalidArgument {
            op: "to_kelvin".to_string(),
            param: "column".to_string(),
            reason,
        };
        let mut args = args.into_iter();
        let (Some(OpValue::Data(batch)), Some(OpValue::Literal(Literal::Str(column)))) = (args.next(), args.next())
        else {
            return Err(invalid("expected data and a column name".to_string()));
        };
        let celsius = batch
            .column_by_name(&column)
            .ok_or_else(|| invalid(format!("no column {column:?}")))?;
        let celsius = cast(celsius, &DataType::Float64).map_err(|error| invalid(error.to_string()))?;
        let offset = Float64Array::new_scalar(273.15);
        let kelvin: ArrayRef = add(&celsius, &offset).map_err(|error| invalid(error.to_string()))?;
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|field| field.as_ref().clone())
            .collect();
        fields.push(Field::new(format!("{column}_kelvin"), DataType::Float64, true));
        let mut columns = batch.columns().to_vec();
        columns.push(kelvin);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|error| invalid(error.to_string()))
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|pair| pair[0] == name).map(|pair| pair[1].clone())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args: Vec<String> = std::env::args().collect();
    let cluster = flag(&args, "--cluster").ok_or("--cluster ADDRS is required")?;
    let listen = flag(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".to_string());
    let data_dir = flag(&args, "--data-dir").ok_or("--data-dir DIR is required")?;
    let memory_limit = parse_bytes(&flag(&args, "--memory-limit").unwrap_or_else(|| "512MiB".to_string()))?;
    let nthreads: u32 = flag(&args, "--nthreads").unwrap_or_else(|| "2".to_string()).parse()?;
    let mut config = WorkerConfig::new(
        cluster.split(',').map(str::to_string).collect(),
        data_dir.into(),
        memory_limit,
        nthreads,
    );
    config.heartbeat_interval = std::time::Duration::from_millis(200);

    let mut operations = OpRegistry::builtins();
    operations.register(ToKelvin)?;

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("custom worker listening on {}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    cairn_worker::run_with_operations(config, listener, shutdown, operations).await?;
    Ok(())
}
