//! The catalog side of Arrow Flight: `ListFlights` (published collections, in
//! publish order) and `GetFlightInfo` (schema, rows, bytes, an endpoint per chunk
//! naming the workers that hold it). Workers serve `DoGet`/`DoPut`.
//!
//! Every replica answers. The leader answers from its state after a read barrier;
//! a follower asks the leader's Catalog service, so a plain Flight client (which
//! follows no Cairn redirects) may connect to any replica.

use std::time::Duration;

use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, Location, PollInfo, PutResult, SchemaResult, Ticket,
};
use cairn_proto::v1 as pb;
use cairn_proto::v1::catalog_client::CatalogClient;
use futures::stream::BoxStream;
use futures::StreamExt;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status, Streaming};

use super::consensus::Consensus;
use super::convert::info_reply;
use super::error::ServerError;
use crate::catalog::{CatalogError, DatasetName, EntryKind};

/// How long a follower waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the catalog side of Arrow Flight for one replica.
pub struct CatalogFlightService {
    /// Raft and the applied state.
    consensus: Consensus,
}

impl CatalogFlightService {
    /// The service over `consensus`.
    pub fn new(consensus: Consensus) -> CatalogFlightService {
        CatalogFlightService { consensus }
    }

    /// The leader's address when this replica does not lead, else None once the
    /// read barrier has passed (reads of the local state are then linearizable).
    async fn barrier_or_leader(&self) -> Result<Option<String>, ServerError> {
        match self.consensus.read_barrier().await {
            Ok(()) => Ok(None),
            Err(ServerError::NotLeader {
                leader_addr: Some(addr),
                ..
            }) => Ok(Some(addr)),
            Err(error) => Err(error),
        }
    }

    /// Infos of persisted datasets: all of them in publish order (`name` None) or one.
    async fn infos(&self, name: Option<&DatasetName>) -> Result<Vec<pb::DatasetInfo>, ServerError> {
        let Some(leader) = self.barrier_or_leader().await? else {
            return self.consensus.state.read(|state| match name {
                Some(name) => match state.get(name) {
                    Some(entry) => Ok(vec![info_reply(state, entry)]),
                    None => Err(ServerError::Catalog(CatalogError::NotFound { name: name.to_string() })),
                },
                None => Ok(state
                    .entries_in_order()
                    .into_iter()
                    .filter(|entry| matches!(entry.kind, EntryKind::Persisted(_)))
                    .map(|entry| info_reply(state, entry))
                    .collect()),
            });
        };
        let forwarded = tokio::time::timeout(FORWARD_TIMEOUT, forward_infos(&leader, name)).await;
        forwarded.unwrap_or_else(|_| {
            Err(ServerError::Unavailable {
                reason: format!("the leader at {leader} did not answer within {FORWARD_TIMEOUT:?}"),
            })
        })
    }
}

/// Asks the leader's Catalog service for infos.
async fn forward_infos(leader: &str, name: Option<&DatasetName>) -> Result<Vec<pb::DatasetInfo>, ServerError> {
    let unavailable = |reason: String| ServerError::Unavailable { reason };
    let channel = Endpoint::from_shared(format!("http://{leader}"))
        .map_err(|error| unavailable(format!("bad leader address {leader}: {error}")))?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    let mut catalog = CatalogClient::new(channel);
    let names = match name {
        Some(name) => vec![name.to_string()],
        None => {
            let reply = catalog
                .list(pb::ListRequest {})
                .await
                .map_err(|status| unavailable(format!("the leader at {leader}: {}", status.message())))?;
            reply.into_inner().names
        }
    };
    let mut infos = Vec::new();
    for dataset in names {
        match catalog.info(pb::NameRequest { name: dataset.clone() }).await {
            Ok(info) => {
                let info = info.into_inner();
                if info.persisted.is_some() || name.is_some() {
                    infos.push(info);
                }
            }
            // Unpublished between the list and the info.
            Err(status) if status.code() == tonic::Code::NotFound && name.is_none() => {}
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(ServerError::Catalog(CatalogError::NotFound { name: dataset }))
            }
            Err(status) => return Err(unavailable(format!("the leader at {leader}: {}", status.message()))),
        }
    }
    Ok(infos)
}

/// The dataset a descriptor names: `PATH [name]`, or `CMD` holding the name.
fn descriptor_name(descriptor: &FlightDescriptor) -> Result<DatasetName, ServerError> {
    let text = if descriptor.r#type == DescriptorType::Path as i32 {
        match descriptor.path.as_slice() {
            [name] => name.clone(),
            other => {
                return Err(ServerError::InvalidRequest {
                    reason: format!("a descriptor path names one dataset, got {} elements", other.len()),
                })
            }
        }
    } else {
        String::from_utf8(descriptor.cmd.to_vec()).map_err(|_| ServerError::InvalidRequest {
            reason: "a descriptor command must be a dataset name in UTF-8".to_string(),
        })?
    };
    Ok(DatasetName::parse(&text)?)
}

/// A dataset's FlightInfo: its schema, and an endpoint per chunk (in order) whose
/// locations are the live workers holding the chunk.
fn flight_info(info: pb::DatasetInfo) -> Result<FlightInfo, ServerError> {
    let Some(collection) = info.persisted else {
        return Err(ServerError::InvalidRequest {
            reason: format!(
                "dataset '{}' is an inline {}, not a collection; read it with `cairn datasets get`",
                info.name, info.kind
            ),
        });
    };
    let endpoints = collection
        .chunks
        .into_iter()
        .map(|chunk| FlightEndpoint {
            ticket: Some(Ticket {
                ticket: chunk.key.into_bytes().into(),
            }),
            location: chunk
                .locations
                .into_iter()
                .filter(|location| location.live)
                .map(|location| Location {
                    uri: format!("grpc+tcp://{}", location.addr),
                })
                .collect(),
            expiration_time: None,
            app_metadata: Default::default(),
        })
        .collect();
    Ok(FlightInfo {
        schema: collection.schema_ipc.into(),
        flight_descriptor: Some(FlightDescriptor::new_path(vec![info.name])),
        endpoint: endpoints,
        total_records: collection.rows as i64,
        total_bytes: collection.bytes as i64,
        ordered: true,
        app_metadata: Default::default(),
    })
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not served by a scheduler: ask a worker (the locations of GetFlightInfo's endpoints)"
    ))
}

#[tonic::async_trait]
impl FlightService for CatalogFlightService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("no authentication: no handshake is needed"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let infos = self.infos(None).await?;
        let flights: Vec<Result<FlightInfo, Status>> = infos
            .into_iter()
            .map(|info| flight_info(info).map_err(Status::from))
            .collect();
        Ok(Response::new(futures::stream::iter(flights).boxed()))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let name = descriptor_name(request.get_ref())?;
        let mut infos = self.infos(Some(&name)).await?;
        let info = infos
            .pop()
            .ok_or_else(|| ServerError::Catalog(CatalogError::NotFound { name: name.to_string() }))?;
        Ok(Response::new(flight_info(info)?))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "use GetFlightInfo: a published dataset is complete",
        ))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let name = descriptor_name(request.get_ref())?;
        let mut infos = self.infos(Some(&name)).await?;
        let info = infos
            .pop()
            .ok_or_else(|| ServerError::Catalog(CatalogError::NotFound { name: name.to_string() }))?;
        let schema = flight_info(info)?.schema;
        Ok(Response::new(SchemaResult { schema }))
    }

    async fn do_get(&self, _request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        Err(unimplemented("DoGet"))
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(unimplemented("DoPut"))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("no actions"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("DoExchange"))
    }
}
