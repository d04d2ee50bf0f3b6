//! The transport on a real runtime and real sockets: frames reach the listener's handlers in
//! order, requests get their answers, a link survives its peer restarting, and a client
//! recovers from a voter that is down.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_engine::rt::{self, Runtime, RuntimeConfig, TcpListener};

use super::*;
use crate::controller::view::Unreachable;

fn on_runtime<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = Runtime::start(
        RuntimeConfig {
            cores: 1,
            pin_threads: false,
            // The listeners' tasks never end on their own.
            shutdown_grace: Duration::from_millis(50),
            ..RuntimeConfig::default()
        },
        |_| async {},
    )
    .expect("runtime starts");
    runtime.handle().run_on(0, test).expect("shard runs");
    runtime.shutdown();
    runtime.join().expect("runtime stops");
}

/// A controller stand-in: records Raft payloads, answers heartbeats with `is_caught_up` set
/// to whether the broker's epoch is even.
fn recording_handlers(raft: Rc<RefCell<Vec<Bytes>>>) -> Rc<Handlers> {
    Rc::new(Handlers {
        raft: Box::new(move |payload| raft.borrow_mut().push(payload)),
        request: Box::new(|mut payload| {
            Box::pin(async move {
                let version = i16::from_be_bytes([payload[2], payload[3]]);
                let key = ApiKey::try_from(i16::from_be_bytes([payload[0], payload[1]])).ok()?;
                let header =
                    RequestHeader::decode(&mut payload, key.request_header_version(version))
                        .ok()?;
                let request = BrokerHeartbeatRequest::decode(&mut payload, version).ok()?;
                let mut response_header = ResponseHeader::default();
                response_header.correlation_id = header.correlation_id;
                let mut response = BrokerHeartbeatResponse::default();
                response.is_caught_up = request.broker_epoch % 2 == 0;
                let mut out = BytesMut::new();
                response_header
                    .encode(&mut out, key.response_header_version(version))
                    .ok()?;
                response.encode(&mut out, version).ok()?;
                Some(out.freeze())
            })
        }),
    })
}

fn heartbeat(epoch: i64) -> BrokerHeartbeatRequest {
    let mut request = BrokerHeartbeatRequest::default();
    request.broker_epoch = epoch;
    request
}

#[test]
fn raft_frames_arrive_in_order_over_a_peer_link() {
    on_runtime(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().to_string();
        let received = Rc::new(RefCell::new(Vec::new()));
        rt::spawn_local(serve(listener, recording_handlers(received.clone())));
        let link = PeerLink::start(address, Rc::new(|_, _| {}));
        for i in 0..100u32 {
            link.send(encode_frame(Kind::Raft, &i.to_be_bytes()));
        }
        for _ in 0..200 {
            if received.borrow().len() == 100 {
                break;
            }
            rt::sleep(Duration::from_millis(10)).await;
        }
        let received: Vec<u32> = received
            .borrow()
            .iter()
            .map(|p| u32::from_be_bytes(p[..].try_into().unwrap()))
            .collect();
        assert_eq!(received, (0..100).collect::<Vec<_>>());
        assert!(link.is_connected());
    });
}

/// A peer that dies is unreachable as soon as its close reaches this node's kernel, before
/// the link's task has read it: a client that saw the death may ask a shard that runs
/// before the link's (here: the test never yields after the close, so the link cannot run).
#[test]
fn a_link_whose_peer_closed_is_unreachable_before_the_link_reads_it() {
    on_runtime(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().to_string();
        let unreachable = Arc::new(Unreachable::default());
        let changed = Rc::new(rt::LocalEvent::new());
        let watcher: Watcher = {
            let (unreachable, changed) = (unreachable.clone(), changed.clone());
            Rc::new(move |state, connection| {
                unreachable.link_changed(7, state, connection);
                changed.notify_all();
            })
        };
        let link = PeerLink::start(address, watcher);
        let (accepted, _) = listener.accept().await.expect("the link connects");
        while !link.is_connected() {
            rt::timeout(Duration::from_secs(5), changed.wait())
                .await
                .expect("the link reports it is up");
        }
        assert_eq!(unreachable.now(), Vec::<i32>::new(), "up and open");
        drop(accepted);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while unreachable.now() != [7] {
            assert!(
                std::time::Instant::now() < deadline,
                "the close was never seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(link.is_connected(), "the link itself has not run yet");
        drop(link);
    });
}

/// A peer's process dying closes its connections and its listener at once. The link notices
/// the close itself (no frame need fail) and asks again at once, so the refusal that says the
/// peer is gone is known, and reported, straight away: lost, then refused.
#[test]
fn a_link_whose_idle_peer_dies_reports_it_lost_then_refused() {
    on_runtime(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().to_string();
        let reported = Rc::new(RefCell::new(Vec::new()));
        let changed = Rc::new(rt::LocalEvent::new());
        let watcher: Watcher = {
            let (reported, changed) = (reported.clone(), changed.clone());
            Rc::new(move |state, _| {
                reported.borrow_mut().push(state);
                changed.notify_all();
            })
        };
        let link = PeerLink::start(address, watcher);
        let (accepted, _) = listener.accept().await.expect("the link connects");
        while *reported.borrow() != [LinkState::Up] {
            rt::timeout(Duration::from_secs(5), changed.wait())
                .await
                .expect("the link reports it is up");
        }
        assert_eq!(link.last_refused(), None);
        listener.close().await.expect("listener closes");
        accepted.close().await.expect("connection closes");
        let closed_at = std::time::Instant::now();
        while reported.borrow().len() < 3 {
            rt::timeout(Duration::from_secs(5), changed.wait())
                .await
                .expect("the loss and the refusal are reported without any frame sent");
        }
        assert_eq!(
            *reported.borrow(),
            [LinkState::Up, LinkState::Lost, LinkState::Refused]
        );
        assert!(link.last_refused().is_some_and(|at| at >= closed_at));
        assert!(!link.is_connected());
    });
}

#[test]
fn a_link_reconnects_when_its_peer_comes_back() {
    on_runtime(|| async {
        // Reserve a port, then leave it closed: the peer is down.
        let address = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .to_string();
        let link = PeerLink::start(address.clone(), Rc::new(|_, _| {}));
        link.send(encode_frame(Kind::Raft, b"lost"));
        rt::sleep(Duration::from_millis(300)).await;
        assert!(!link.is_connected());
        let listener = TcpListener::bind(address.as_str()).expect("rebind the same port");
        let received = Rc::new(RefCell::new(Vec::new()));
        rt::spawn_local(serve(listener, recording_handlers(received.clone())));
        for _ in 0..100 {
            link.send(encode_frame(Kind::Raft, b"after"));
            rt::sleep(Duration::from_millis(20)).await;
            if !received.borrow().is_empty() {
                break;
            }
        }
        assert!(
            received.borrow().iter().all(|p| &p[..] == b"after"),
            "frames queued while the peer was down are dropped"
        );
        assert!(!received.borrow().is_empty(), "the link reconnected");
    });
}

#[test]
fn a_client_calls_the_controller_and_moves_past_a_dead_voter() {
    on_runtime(|| async {
        let dead = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let live = listener.local_addr().to_string();
        rt::spawn_local(serve(
            listener,
            recording_handlers(Rc::new(RefCell::new(Vec::new()))),
        ));
        let mut client = RpcClient::new(
            vec![(1, dead), (2, live)],
            "broker-3".into(),
            Duration::from_secs(2),
        );
        assert_eq!(client.target(), Some(1));
        let failed: Result<BrokerHeartbeatResponse, _> =
            client.call(ApiKey::BrokerHeartbeat, 0, &heartbeat(2)).await;
        assert!(matches!(
            failed,
            Err(RpcError::Unreachable { voter: 1, .. })
        ));
        client.try_next();
        for epoch in [2, 3, 4] {
            let answer: BrokerHeartbeatResponse = client
                .call(ApiKey::BrokerHeartbeat, 0, &heartbeat(epoch))
                .await
                .expect("the live voter answers");
            assert_eq!(
                answer.is_caught_up,
                epoch % 2 == 0,
                "answer to epoch {epoch}"
            );
        }
        client.aim_at(1);
        assert_eq!(client.target(), Some(1));
    });
}
