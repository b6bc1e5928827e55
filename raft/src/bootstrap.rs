//! The check before a replica bootstraps a cluster with `--peers` and an empty data
//! dir: does any peer already know it?
//!
//! A replica whose data dir was lost, restarted with its original `--peers`, would
//! otherwise initialize itself as a fresh member of the cluster it belonged to: with
//! its vote gone it can grant a second vote in a term it already voted in (two
//! leaders in one term), and it counts towards quorums for entries it no longer holds.
//! Peers record every replica they exchange Raft messages with ([`KnownPeers`]), so
//! the replica asks each peer ([`check_before_bootstrap`]); if one knows it, starting
//! is refused with the safe procedure (remove the node, start it with `--join`, add
//! it back).
//!
//! When every replica starts empty at once, none is known to any other and each
//! bootstraps, as before. So that they need not wait on each other, a replica answers
//! probes from the moment its port is bound, while it probes ([`FreshResponder`]:
//! "I know no one"), and the caller binds the port before calling this. A peer that
//! refuses the connection is asked again until the deadline: a replica with an intact
//! data dir that restarts at the same moment (the whole cluster restarted) comes up and
//! answers within it. A peer that does not answer by then is not counted, and a
//! replica started alone waits the whole deadline once, on its very first start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_proto::v1::raft_transport_client::RaftTransportClient;
use cairn_proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use cairn_proto::v1::{BootstrapProbe, BootstrapProbeReply, RaftMessage};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpListener;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::identity::derive_cluster_id;
use crate::node::database_dir;
use crate::types::NodeId;
use crate::OpenError;

/// How long one probe attempt may take (connect + answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1000);
/// The pause before asking again a peer that did not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long the responder may take to close its connections once the check is done.
const RESPONDER_GRACE: Duration = Duration::from_millis(500);

/// A replica about to bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapCheck {
    /// Its id (`--id`).
    pub node_id: NodeId,
    /// Its data dir (`--data-dir`).
    pub data_dir: PathBuf,
    /// Every initial voter, itself included (`--peers`).
    pub peers: BTreeMap<NodeId, String>,
    /// The cluster token (`--cluster-token`).
    pub token: String,
    /// The address it listens on (`--listen`), for the message.
    pub listen: String,
    /// How long to wait for the peers' answers.
    pub deadline: Duration,
}

impl BootstrapCheck {
    /// Whether this start needs the check: a bootstrap with an empty data dir and other
    /// peers to ask. A data dir that holds a database is intact; `RaftNode::open`
    /// reports every other problem (not a peer, not a data dir).
    pub fn needed(&self) -> bool {
        !database_dir(&self.data_dir).exists()
            && self.peers.contains_key(&self.node_id)
            && self.peers.len() > 1
            && is_empty_or_missing(&self.data_dir)
    }
}

fn is_empty_or_missing(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// A peer's answer, or why there is none.
#[derive(Debug)]
enum Answer {
    /// It answered.
    Reply(BootstrapProbeReply),
    /// It answered with an error (e.g. an older version without the probe).
    Refused(String),
    /// No answer before the deadline.
    Silent(String),
}

/// What the peers said: the listener back, and a peer of this cluster that has
/// already formed it (elected a leader: its log holds more than the initial
/// membership), if one answered so.
#[derive(Debug)]
pub struct BootstrapFindings {
    /// The listener the check borrowed.
    pub listener: TcpListener,
    /// A peer of the same cluster with entries past the initial membership: this
    /// replica must not call `initialize` (see [`crate::Bootstrap::Peers`]).
    pub formed_by: Option<NodeId>,
}

/// Asks every other peer whether it knows `check.node_id`, serving probes on
/// `listener` meanwhile, and gives the listener back. Refuses (with the safe
/// procedure in the error) when a peer of the same cluster knows it.
pub async fn check_before_bootstrap(
    check: &BootstrapCheck,
    listener: TcpListener,
) -> Result<BootstrapFindings, OpenError> {
    if !check.needed() {
        return Ok(BootstrapFindings {
            listener,
            formed_by: None,
        });
    }
    let cluster_id = derive_cluster_id(&check.peers, &check.token);
    let (listener, responder) = FreshResponder::serve(listener, check.node_id)?;
    let outcome = probe_peers(check, &cluster_id).await;
    responder.stop().await;
    let formed_by = outcome?;
    Ok(BootstrapFindings { listener, formed_by })
}

async fn probe_peers(check: &BootstrapCheck, cluster_id: &str) -> Result<Option<NodeId>, OpenError> {
    let deadline = tokio::time::Instant::now() + check.deadline;
    let probe = BootstrapProbe {
        cluster_id: cluster_id.to_string(),
        node_id: check.node_id,
    };
    tracing::info!(
        node = check.node_id,
        "empty data dir: asking the peers whether node {} was a member of this cluster before bootstrapping",
        check.node_id
    );
    let mut asks: FuturesUnordered<_> = check
        .peers
        .iter()
        .filter(|(id, _)| **id != check.node_id)
        .map(|(id, addr)| {
            let probe = probe.clone();
            async move { (*id, addr.clone(), ask_until(addr, probe, deadline).await) }
        })
        .collect();
    let mut silent = Vec::new();
    let mut formed_by = None;
    while let Some((peer, peer_addr, answer)) = asks.next().await {
        match answer {
            Answer::Reply(reply) if reply.knows_node && reply.cluster_id == cluster_id => {
                let others: Vec<String> = check
                    .peers
                    .iter()
                    .filter(|(id, _)| **id != check.node_id)
                    .map(|(_, addr)| addr.clone())
                    .collect();
                return Err(OpenError::DataDirLost {
                    node_id: check.node_id,
                    data_dir: check.data_dir.clone(),
                    peer,
                    peer_addr,
                    term: reply.term,
                    last_log_index: reply.last_log_index,
                    listen: check.listen.clone(),
                    addr: check.peers[&check.node_id].clone(),
                    others: others.join(","),
                });
            }
            Answer::Reply(reply) => {
                if reply.cluster_id == cluster_id && reply.last_log_index > 0 {
                    formed_by.get_or_insert(peer);
                }
                if !reply.cluster_id.is_empty() && reply.cluster_id != cluster_id {
                    tracing::warn!(
                        peer,
                        theirs = reply.cluster_id,
                        ours = cluster_id,
                        "peer {peer} at {peer_addr} belongs to another cluster"
                    );
                }
            }
            Answer::Refused(reason) => {
                tracing::warn!(peer, %reason, "peer {peer} at {peer_addr} cannot answer the bootstrap probe");
            }
            Answer::Silent(reason) => silent.push(format!("{peer} ({reason})")),
        }
    }
    if silent.is_empty() {
        tracing::info!(node = check.node_id, "no peer knows this node: bootstrapping");
    } else {
        tracing::warn!(
            node = check.node_id,
            "bootstrapping: no peer that answered knows this node; no answer within {:?} from {}",
            check.deadline,
            silent.join(", ")
        );
    }
    Ok(formed_by)
}

/// Asks `addr` until it answers or `deadline` passes.
async fn ask_until(addr: &str, probe: BootstrapProbe, deadline: tokio::time::Instant) -> Answer {
    let mut last_error = "not asked".to_string();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Answer::Silent(last_error);
        }
        let attempt = ATTEMPT_TIMEOUT.min(left);
        match tokio::time::timeout(attempt, ask_once(addr, probe.clone(), attempt)).await {
            Ok(Ok(reply)) => return Answer::Reply(reply),
            Ok(Err(AskError::Refused(reason))) => return Answer::Refused(reason),
            Ok(Err(AskError::Unreachable(reason))) => last_error = reason,
            Err(_elapsed) => last_error = format!("no answer within {attempt:?}"),
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(RETRY_PAUSE.min(left)).await;
    }
}

/// An error with its sources ("transport error: tcp connect error: Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

enum AskError {
    /// Worth asking again.
    Unreachable(String),
    /// The peer answered with an error.
    Refused(String),
}

async fn ask_once(addr: &str, probe: BootstrapProbe, timeout: Duration) -> Result<BootstrapProbeReply, AskError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| AskError::Refused(format!("invalid address: {error}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| AskError::Unreachable(format!("cannot connect: {}", error_chain(&error))))?;
    match RaftTransportClient::new(channel).probe_bootstrap(probe).await {
        Ok(reply) => Ok(reply.into_inner()),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown
            ) =>
        {
            Err(AskError::Unreachable(status.message().to_string()))
        }
        Err(status) => Err(AskError::Refused(format!("{}: {}", status.code(), status.message()))),
    }
}

/// Answers peers' bootstrap probes while this replica probes: it holds no state, so it
/// knows no one. Raft messages are refused as "unavailable" (the sender retries).
struct FreshResponder {
    /// This replica.
    node_id: NodeId,
}

/// The running responder.
struct RunningResponder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FreshResponder {
    /// Serves on a duplicate of `listener`'s socket; returns the listener, which keeps
    /// the port bound after the responder stops.
    fn serve(listener: TcpListener, node_id: NodeId) -> Result<(TcpListener, RunningResponder), OpenError> {
        let io_error = |source| OpenError::Io {
            path: PathBuf::from("the listening socket"),
            source,
        };
        let socket = listener.into_std().map_err(io_error)?;
        let duplicate = socket.try_clone().map_err(io_error)?;
        let listener = TcpListener::from_std(socket).map_err(io_error)?;
        let duplicate = TcpListener::from_std(duplicate).map_err(io_error)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Every other service (a client's Catalog or Admin call) is told "unavailable",
        // which clients take as "try another replica", not "unimplemented".
        let router = tonic::service::Routes::new(RaftTransportServer::new(FreshResponder { node_id }))
            .into_axum_router()
            .fallback(move || async move { starting(node_id).into_http::<tonic::body::Body>() });
        let routes = tonic::service::Routes::from(router);
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(duplicate).with_nodelay(Some(true)),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the bootstrap probe responder failed");
            }
        });
        Ok((listener, RunningResponder { stop, task }))
    }
}

impl RunningResponder {
    async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(RESPONDER_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

fn starting(node_id: NodeId) -> Status {
    Status::unavailable(format!(
        "node {node_id} is starting: it is asking its peers before bootstrapping"
    ))
}

#[tonic::async_trait]
impl RaftTransport for FreshResponder {
    type AppendEntriesStreamStream = futures::stream::Empty<Result<RaftMessage, Status>>;

    async fn append_entries(&self, _request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(starting(self.node_id))
    }

    async fn append_entries_stream(
        &self,
        _request: Request<tonic::Streaming<RaftMessage>>,
    ) -> Result<Response<Self::AppendEntriesStreamStream>, Status> {
        Err(starting(self.node_id))
    }

    async fn vote(&self, _request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(starting(self.node_id))
    }

    async fn install_snapshot(&self, _request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(starting(self.node_id))
    }

    async fn pre_vote(&self, _request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(starting(self.node_id))
    }

    async fn probe_bootstrap(
        &self,
        _request: Request<BootstrapProbe>,
    ) -> Result<Response<BootstrapProbeReply>, Status> {
        Ok(Response::new(BootstrapProbeReply {
            cluster_id: String::new(),
            node_id: self.node_id,
            knows_node: false,
            term: 0,
            last_log_index: 0,
            applied_index: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::v1::admin_client::AdminClient;

    /// A peer that knows (or not) every asker, as a replica with state answers.
    struct Peer {
        knows: bool,
    }

    #[tonic::async_trait]
    impl RaftTransport for Peer {
        type AppendEntriesStreamStream = futures::stream::Empty<Result<RaftMessage, Status>>;

        async fn append_entries(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn append_entries_stream(
            &self,
            _: Request<tonic::Streaming<RaftMessage>>,
        ) -> Result<Response<Self::AppendEntriesStreamStream>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn install_snapshot(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn pre_vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn probe_bootstrap(
            &self,
            request: Request<BootstrapProbe>,
        ) -> Result<Response<BootstrapProbeReply>, Status> {
            Ok(Response::new(BootstrapProbeReply {
                cluster_id: request.into_inner().cluster_id,
                node_id: 1,
                knows_node: self.knows,
                term: 7,
                last_log_index: 42,
                applied_index: 42,
            }))
        }
    }

    async fn serve_peer(knows: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftTransportServer::new(Peer { knows }))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        addr
    }

    fn free_addr() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    }

    fn check(data_dir: &Path, peers: BTreeMap<NodeId, String>) -> BootstrapCheck {
        BootstrapCheck {
            node_id: 2,
            data_dir: data_dir.to_path_buf(),
            listen: peers[&2].clone(),
            peers,
            token: "t".to_string(),
            deadline: Duration::from_millis(600),
        }
    }

    /// A peer that knows this replica makes the bootstrap fail, naming the peer and
    /// the safe procedure, and nothing is written to the data dir.
    #[tokio::test]
    async fn a_known_replica_is_refused_with_the_procedure() {
        let dir = tempfile::tempdir().expect("dir");
        let data_dir = dir.path().join("d2");
        let peer = serve_peer(true).await;
        let own = free_addr();
        let peers = BTreeMap::from([(1, peer.clone()), (2, own.clone()), (3, free_addr())]);
        let listener = TcpListener::bind(&own).await.expect("bind");
        let error = check_before_bootstrap(&check(&data_dir, peers), listener)
            .await
            .expect_err("must be refused");
        let text = error.to_string();
        for needle in [
            "refusing to bootstrap node 2 with --peers".to_string(),
            format!("node 1 (at {peer}, term 7, log index 42)"),
            "cairn cluster remove-node --id 2 --cluster".to_string(),
            format!("cairn scheduler --id 2 --listen {own} --data-dir"),
            "--join".to_string(),
            format!("cairn cluster add-node --id 2 --addr {own} --cluster"),
        ] {
            assert!(text.contains(&needle), "{needle:?} missing from: {text}");
        }
        assert!(!data_dir.exists());
    }

    /// Peers that answer without knowing it, or do not answer before the deadline,
    /// let the bootstrap go ahead; an intact data dir is not checked at all.
    #[tokio::test]
    async fn unknown_or_silent_peers_let_it_bootstrap() {
        let dir = tempfile::tempdir().expect("dir");
        let data_dir = dir.path().join("d2");
        let own = free_addr();
        let peers = BTreeMap::from([(1, serve_peer(false).await), (2, own.clone()), (3, free_addr())]);
        let listener = TcpListener::bind(&own).await.expect("bind");
        let started = tokio::time::Instant::now();
        let findings = check_before_bootstrap(&check(&data_dir, peers.clone()), listener)
            .await
            .expect("bootstraps");
        assert_eq!(
            findings.formed_by,
            Some(1),
            "the peer's log is past the initial membership"
        );
        let listener = findings.listener;
        // The silent peer is asked until the deadline, not longer.
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(listener.local_addr().expect("addr").to_string(), own);

        std::fs::create_dir_all(data_dir.join("db")).expect("db dir");
        assert!(!check(&data_dir, peers).needed());
    }

    /// While it probes, a replica answers probes ("I know no one"), refuses Raft
    /// messages and every client service as unavailable (so clients try another
    /// replica), and gives its port back afterwards.
    #[tokio::test]
    async fn a_probing_replica_answers_probes_and_turns_clients_away() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (listener, responder) = FreshResponder::serve(listener, 5).expect("serve");
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let reply = RaftTransportClient::new(channel.clone())
            .probe_bootstrap(BootstrapProbe {
                cluster_id: "c".to_string(),
                node_id: 1,
            })
            .await
            .expect("probe")
            .into_inner();
        assert!(!reply.knows_node);
        assert_eq!(reply.node_id, 5);
        let vote = RaftTransportClient::new(channel.clone())
            .vote(RaftMessage::default())
            .await
            .expect_err("no raft yet");
        assert_eq!(vote.code(), tonic::Code::Unavailable);
        let status = AdminClient::new(channel)
            .status(cairn_proto::v1::StatusRequest {})
            .await
            .expect_err("no admin yet");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        responder.stop().await;
        assert_eq!(listener.local_addr().expect("addr"), addr);
    }
}
