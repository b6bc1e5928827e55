//! Flight `DoGet`, answered with gRPC messages framed by hand so that a chunk's bytes
//! reach HTTP/2 as they are.
//!
//! tonic encodes every message into its own buffer before handing it to HTTP/2, so a
//! chunk streamed to a reader was copied once more, on the one thread that drives the
//! connection: 9 % of the machine's samples, a quarter of that thread's, while `cairn
//! bench data` streamed a GiB. Here each message becomes two pieces: a small prefix
//! (the gRPC length prefix, the message's other fields, the body's field key and
//! length) and the body itself, a slice of the chunk's file or batch, which HTTP/2
//! writes to the socket without copying it. The wire format is exactly what tonic
//! sends (a `FlightData` per gRPC message, the status in the trailers), so any Flight
//! client reads it.
//!
//! [`FlightRoutes`] takes the `DoGet` path and passes every other Flight call to the
//! generated service.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::{FlightData, Ticket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use tonic::body::Body;
use tonic::codegen::http::{self, header, HeaderMap, HeaderName, HeaderValue};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

use crate::flight::{chunk_answer, WorkerData, WorkerFlightService, MAX_MESSAGE_BYTES};

/// The `DoGet` method's path.
pub const DO_GET_PATH: &str = "/arrow.flight.protocol.FlightService/DoGet";
/// `FlightData.data_body`'s field number.
const DATA_BODY_TAG: u32 = 1000;
/// The gRPC length prefix: a compression flag and a big-endian length.
const PREFIX_BYTES: usize = 5;
/// A `DoGet` request is one ticket (a chunk key): far less than this.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a client may take to send its ticket.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker's Flight service with `DoGet` framed by hand.
#[derive(Clone)]
pub struct FlightRoutes {
    data: WorkerData,
    service: FlightServiceServer<WorkerFlightService>,
}

impl FlightRoutes {
    /// `service` for every Flight call but `DoGet`, which reads chunks from `data`.
    pub fn new(data: WorkerData, service: FlightServiceServer<WorkerFlightService>) -> FlightRoutes {
        FlightRoutes { data, service }
    }
}

impl NamedService for FlightRoutes {
    const NAME: &'static str = <FlightServiceServer<WorkerFlightService> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for FlightRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both routes are always ready (tonic's generated services are).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() == DO_GET_PATH {
            let data = self.data.clone();
            Box::pin(async move { Ok(answer_do_get(&data, request.into_body()).await) })
        } else {
            let mut service = self.service.clone();
            Box::pin(async move { service.call(request).await })
        }
    }
}

/// The whole HTTP answer to a `DoGet` whose request body is `body`.
async fn answer_do_get(data: &WorkerData, body: Body) -> http::Response<Body> {
    let messages = match read_ticket(body)
        .await
        .and_then(|ticket| chunk_answer(data, &ticket.ticket))
    {
        Ok(messages) => messages,
        // Refused before any message: a trailers-only answer, as tonic gives.
        Err(status) => return status.into_http(),
    };
    let mut response = http::Response::new(Body::new(StreamBody::new(framed(messages))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// The one ticket a `DoGet` request carries (uncompressed, at most `MAX_REQUEST_BYTES`).
async fn read_ticket(body: Body) -> Result<Ticket, Status> {
    let collected = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_REQUEST_BYTES).collect())
        .await
        .map_err(|_| Status::deadline_exceeded(format!("no DoGet ticket within {REQUEST_TIMEOUT:?}")))?
        .map_err(|error| {
            Status::invalid_argument(format!(
                "cannot read the DoGet request (one ticket, at most {MAX_REQUEST_BYTES} bytes): {error}"
            ))
        })?
        .to_bytes();
    let (prefix, message) = collected
        .split_at_checked(PREFIX_BYTES)
        .ok_or_else(|| Status::invalid_argument("a DoGet request holds one gRPC message"))?;
    let (flag, length) = prefix.split_at(1);
    if flag != [0] {
        return Err(Status::unimplemented(
            "this worker reads only uncompressed DoGet requests",
        ));
    }
    let length = u32::from_be_bytes(length.try_into().map_err(|_| Status::internal("a 4-byte length"))?);
    if length as usize != message.len() {
        return Err(Status::invalid_argument(format!(
            "a DoGet request holds one gRPC message: {} bytes follow a prefix of {length}",
            message.len()
        )));
    }
    Ticket::decode(message).map_err(|error| Status::invalid_argument(format!("undecodable ticket: {error}")))
}

/// The HTTP/2 body of `messages`: two data frames per message, then the trailers with
/// the status (the first error ends the stream; nothing follows the trailers).
fn framed(
    messages: BoxStream<'static, Result<FlightData, Status>>,
) -> impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    futures::stream::unfold(Some(messages), |state| async move {
        let mut messages = state?;
        let (frames, rest) = match messages.next().await {
            Some(Ok(message)) => match message_frames(message) {
                Ok(frames) => (frames, Some(messages)),
                Err(status) => (vec![Frame::trailers(trailers(&status))], None),
            },
            Some(Err(status)) => (vec![Frame::trailers(trailers(&status))], None),
            None => (vec![Frame::trailers(trailers(&Status::ok("")))], None),
        };
        Some((futures::stream::iter(frames.into_iter().map(Ok)), rest))
    })
    .flatten()
}

/// One `FlightData` as a gRPC message in two pieces: everything up to the body's bytes,
/// then the body itself (not copied).
fn message_frames(mut message: FlightData) -> Result<Vec<Frame<Bytes>>, Status> {
    let body = std::mem::take(&mut message.data_body);
    let fields = message.encoded_len();
    let body_field = if body.is_empty() {
        0
    } else {
        key_len(DATA_BODY_TAG) + encoded_len_varint(body.len() as u64) + body.len()
    };
    let length = fields + body_field;
    if length > MAX_MESSAGE_BYTES {
        return Err(Status::resource_exhausted(format!(
            "a Flight message of {length} bytes is over the limit of {MAX_MESSAGE_BYTES}"
        )));
    }
    let mut prefix = BytesMut::with_capacity(PREFIX_BYTES + fields + 16);
    prefix.put_u8(0);
    prefix.put_u32(length as u32);
    message.encode_raw(&mut prefix);
    if body.is_empty() {
        return Ok(vec![Frame::data(prefix.freeze())]);
    }
    encode_key(DATA_BODY_TAG, WireType::LengthDelimited, &mut prefix);
    encode_varint(body.len() as u64, &mut prefix);
    Ok(vec![Frame::data(prefix.freeze()), Frame::data(body)])
}

/// The trailers that carry `status` (`grpc-status`, `grpc-message`, its metadata).
fn trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // Metadata that cannot be a header: the code alone still tells the outcome.
        trailers.clear();
        trailers.insert(
            HeaderName::from_static("grpc-status"),
            HeaderValue::from(status.code() as i32),
        );
    }
    trailers
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow_flight::FlightClient;
    use futures::TryStreamExt;

    use crate::store::{ChunkStore, StoreConfig};
    use crate::ChunkKey;

    fn batch(first: i64, rows: usize) -> RecordBatch {
        let ids = Int64Array::from_iter_values(first..first + rows as i64);
        let names = StringArray::from_iter_values((0..rows).map(|row| format!("row {row}")));
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as arrow::array::ArrayRef),
            ("name", Arc::new(names) as _),
        ])
        .expect("a batch")
    }

    /// A worker's Flight routes on a real socket, answering any Flight client: a chunk
    /// in memory, a chunk only in its spill file, the errors a reader acts on, and a
    /// call that is not `DoGet` (passed to the generated service).
    #[tokio::test]
    async fn any_flight_client_reads_chunks_from_the_routes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        // 1 MiB: the second chunk of half a MiB pushes the first one out to its file.
        let (store, _) = ChunkStore::open(StoreConfig::new(dir.path(), 1 << 20))?;
        let spilled = batch(0, 20_000);
        let resident = batch(20_000, 20_000);
        store.put(ChunkKey::parse("spilled.1")?, spilled.clone())?;
        store.put(ChunkKey::parse("resident.1")?, resident.clone())?;
        assert_eq!(store.stats().spill_count, 1, "{:?}", store.stats());
        let worker_data = |store: ChunkStore| WorkerData {
            worker_id: "0123456789abcdef".to_string(),
            store,
            lost: Arc::new(Mutex::new(Vec::new())),
            upload_permits: Arc::new(tokio::sync::Semaphore::new(1)),
            forwarding_permits: Arc::new(tokio::sync::Semaphore::new(1)),
            boot: 1,
            registered: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        // The generated service gets an empty store: a chunk read proves the route served it.
        let other_dir = tempfile::tempdir()?;
        let (empty, _) = ChunkStore::open(StoreConfig::new(other_dir.path(), 1 << 20))?;
        let service = FlightServiceServer::new(WorkerFlightService::new(worker_data(empty)));
        let routes = FlightRoutes::new(worker_data(store), service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(routes)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let mut client = FlightClient::new(channel);

        for (key, expected) in [("spilled.1", &spilled), ("resident.1", &resident)] {
            let batches: Vec<RecordBatch> = client
                .do_get(Ticket::new(key.as_bytes().to_vec()))
                .await?
                .try_collect()
                .await?;
            assert_eq!(
                arrow::compute::concat_batches(&expected.schema(), &batches)?,
                *expected,
                "{key}"
            );
        }
        let status = |error: arrow_flight::error::FlightError| match error {
            arrow_flight::error::FlightError::Tonic(status) => *status,
            other => panic!("not a status: {other}"),
        };
        let missing = client
            .do_get(Ticket::new(b"absent.1".to_vec()))
            .await
            .map(drop)
            .expect_err("no such chunk");
        assert_eq!(status(missing).code(), tonic::Code::NotFound);
        let bad = client
            .do_get(Ticket::new(b"not a key!".to_vec()))
            .await
            .map(drop)
            .expect_err("not a key");
        assert_eq!(status(bad).code(), tonic::Code::InvalidArgument);
        let actions: Vec<_> = client.list_actions().await?.try_collect().await?;
        assert_eq!(actions.len(), 1, "{actions:?}");
        server.abort();
        Ok(())
    }

    fn concatenated(frames: &[Frame<Bytes>]) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|frame| frame.data_ref().expect("a data frame").to_vec())
            .collect()
    }

    /// The two pieces are one gRPC message that prost decodes to the message sent, and
    /// the body piece is the body's own bytes (the same allocation, not a copy).
    #[test]
    fn a_message_is_framed_as_tonic_frames_it_without_copying_the_body() {
        for len in [0usize, 1, 127, 128, 16_384, 1 << 20] {
            let body = Bytes::from((0..len).map(|index| (index % 253) as u8).collect::<Vec<u8>>());
            let message = FlightData {
                flight_descriptor: None,
                data_header: Bytes::from_static(b"a flatbuffer header"),
                app_metadata: Bytes::from_static(b"meta"),
                data_body: body.clone(),
            };
            let frames = message_frames(message.clone()).expect("framed");
            if len > 0 {
                let sent = frames[1].data_ref().expect("the body frame");
                assert_eq!(sent.as_ptr(), body.as_ptr(), "the body is not copied");
            }
            let bytes = concatenated(&frames);
            assert_eq!(bytes[0], 0, "uncompressed");
            let length = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes")) as usize;
            assert_eq!(length, bytes.len() - PREFIX_BYTES, "len {len}");
            assert_eq!(FlightData::decode(&bytes[PREFIX_BYTES..]).expect("decodes"), message);
        }
    }

    #[test]
    fn a_message_over_the_limit_is_an_error() {
        let message = FlightData {
            data_body: Bytes::from(vec![0u8; MAX_MESSAGE_BYTES]),
            ..Default::default()
        };
        let status = message_frames(message).expect_err("too big");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    /// A stream ends with the trailers: `grpc-status: 0`, or the first error's status
    /// (and nothing after it).
    #[test]
    fn the_status_goes_in_the_trailers() {
        let message = FlightData {
            data_header: Bytes::from_static(b"header"),
            ..Default::default()
        };
        let frames = |messages: Vec<Result<FlightData, Status>>| -> Vec<Frame<Bytes>> {
            futures::executor::block_on(
                framed(futures::stream::iter(messages).boxed())
                    .map(|frame| match frame {
                        Ok(frame) => frame,
                    })
                    .collect(),
            )
        };
        let ok = frames(vec![Ok(message.clone())]);
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].trailers_ref().expect("trailers")["grpc-status"], "0");

        let failed = frames(vec![
            Ok(message.clone()),
            Err(Status::not_found("no chunk x.1 here")),
            Ok(message),
        ]);
        assert_eq!(failed.len(), 2, "nothing follows the error");
        let trailers = failed[1].trailers_ref().expect("trailers");
        assert_eq!(
            trailers["grpc-status"],
            (tonic::Code::NotFound as i32).to_string().as_str()
        );
        assert_eq!(
            Status::from_header_map(trailers).expect("a status").message(),
            "no chunk x.1 here"
        );
    }
}
