//! The control API (`serve --control`) over real HTTP on port 0, against a gateway on real
//! loopback TCP (port 0, real clock: the HTTP client waits on real sockets). Feeds are short lists
//! with gaps wide enough that what a test changes lands before the next message is due; pause is
//! used where ordering must not depend on timing.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{DecodeEvent, Decoder, Message, Phone, Version};
use jt808_harness::gateway::control::http::{LOG_DROPPED_HEADER, LOG_NEXT_HEADER};
use jt808_harness::gateway::{Feed, FeedItem, Gateway, GatewayConfig, ListFeed};
use jt808_harness::transport::Listener;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn frame(serial: u16) -> Vec<u8> {
    let body = Body::Raw(RawBody {
        raw: vec![serial as u8, 1, 2, 3],
    });
    Message::new(
        0x0F01,
        Version::V2013,
        Phone::parse("13800000001").unwrap(),
        serial,
        body,
    )
    .encode()
}

/// A gateway whose every session serves `count` frames, the first at once and then `gap_ms`
/// apart, and its control API; both on port 0.
struct Rig {
    gw: Gateway,
    ws: String,
    api: String,
    http: Client<HttpConnector, Full<Bytes>>,
    _stop: watch::Sender<bool>,
}

/// `count` frames, the first at once and then `gap_ms` apart.
fn items(count: u16, gap_ms: u64) -> impl Iterator<Item = FeedItem> {
    (0..count).map(move |i| FeedItem {
        due: Duration::from_millis(gap_ms * u64::from(i)),
        bytes: frame(i),
        close: None,
    })
}

async fn rig(count: u16, gap_ms: u64, log_capacity: usize) -> Rig {
    let feed = move |_: &str| -> Box<dyn Feed> { Box::new(ListFeed::new(items(count, gap_ms))) };
    rig_with(feed, log_capacity).await
}

/// A feed of [`items`] that answers every message the client sends with frame [`ANSWER`] 100 ms
/// later, as the simulated terminal answers a command (later: the connection must wake for it).
struct Answering(ListFeed);

const ANSWER: u16 = 999;

impl Feed for Answering {
    fn next_item(&mut self) -> Option<FeedItem> {
        self.0.next_item()
    }

    fn on_client_message(&mut self, _msg: &Message, now: Duration) -> Vec<FeedItem> {
        vec![FeedItem {
            due: now + Duration::from_millis(100),
            bytes: frame(ANSWER),
            close: None,
        }]
    }
}

async fn rig_with(feed: impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static, log_capacity: usize) -> Rig {
    let (stop_tx, stop) = watch::channel(false);
    let cfg = GatewayConfig {
        seed: 3,
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(cfg, vec![], feed, stop.clone()).unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ws = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn({
        let gw = gw.clone();
        async move { gw.serve(listener).await }
    });
    gw.enable_control_log(log_capacity);
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let mut stopping = stop;
    let stop_fut = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    tokio::spawn(jt808_harness::gateway::control::http::serve(
        gw.clone(),
        api_listener,
        stop_fut,
    ));
    let http = Client::builder(TokioExecutor::new()).build_http();
    Rig {
        gw,
        ws,
        api,
        http,
        _stop: stop_tx,
    }
}

/// One HTTP response: status, the `X-Log-*` headers when present, the body.
struct Reply {
    status: StatusCode,
    next: Option<u64>,
    dropped: Option<u64>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// A 4xx naming `field`.
    fn rejects(&self, status: StatusCode, field: &str) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.json()["field"], field, "{}", self.body);
        self
    }
}

impl Rig {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.api))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().parse().unwrap());
        let (status, next, dropped) = (resp.status(), header(LOG_NEXT_HEADER), header(LOG_DROPPED_HEADER));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            next,
            dropped,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `messages_sent` of connection `id` (`None`: not open).
    async fn sent(&self, id: u64) -> Option<u64> {
        let conns = self.get("/connections").await.json();
        let conn = conns.as_array().unwrap().iter().find(|c| c["id"] == id)?;
        conn["messages_sent"].as_u64()
    }

    /// The log so far as JSON values.
    async fn log(&self) -> Vec<Value> {
        let r = self.get("/log?since=0").await;
        assert_eq!(r.status, StatusCode::OK);
        r.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    async fn connect(&self, path: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}{path}", self.ws))
            .await
            .unwrap();
        ws
    }

    /// Waits (up to 5 s) until `n` connections are open; their ids.
    async fn wait_open(&self, n: usize) -> Vec<u64> {
        for _ in 0..500 {
            let ids = self.gw.live_connections();
            if ids.len() == n {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {n} open connections: {:?}", self.gw.live_connections());
    }
}

/// The next binary message, decoded: true if the decoder took it, false if it rejected a frame.
async fn next_decodes(ws: &mut Ws, dec: &mut Decoder) -> bool {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("open")
            .expect("no error");
        if let WsMessage::Binary(b) = msg {
            let events = dec.push_vec(&b, Duration::ZERO);
            return !events.iter().any(|e| matches!(e, DecodeEvent::Rejected(_)));
        }
    }
}

fn controls(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|r| r["type"] == "control").collect()
}

#[tokio::test]
async fn a_fault_added_at_run_time_corrupts_the_next_message_of_an_open_connection() {
    let rig = rig(3, 600, 1000).await;
    let mut ws = rig.connect("/").await;
    let mut dec = Decoder::default();
    assert!(next_decodes(&mut ws, &mut dec).await, "before the fault: clean");
    assert_eq!(rig.post("/pause", json!({})).await.status, StatusCode::OK);
    let added = rig
        .post("/faults", json!({"type": "corrupt_checksum", "name": "cc", "every": 1}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.json()["name"], "cc");
    let listed = rig.get("/faults").await.json();
    assert_eq!(
        listed,
        json!([{"name": "cc", "type": "corrupt_checksum", "direction": "to_client", "every": 1}])
    );
    rig.post("/resume", json!({})).await;
    assert!(!next_decodes(&mut ws, &mut dec).await, "the next message is rejected");
    assert_eq!(
        rig.call(Method::DELETE, "/faults/cc", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(next_decodes(&mut ws, &mut dec).await, "removed: clean again");
    let log = rig.log().await;
    let actions: Vec<&Value> = controls(&log).iter().map(|r| &r["action"]).collect();
    assert_eq!(actions, ["pause", "fault_added", "resume", "fault_removed"]);
    let corrupted: Vec<&Value> = log.iter().filter(|r| r["fault"] == "cc").map(|r| &r["msg"]).collect();
    assert_eq!(corrupted, [2], "exactly the second message was corrupted");
}

#[tokio::test]
async fn bad_requests_are_answered_4xx_naming_the_field_and_change_nothing() {
    let rig = rig(2, 50, 1000).await;
    let _ws = rig.connect("/").await;
    let ids = rig.wait_open(1).await;
    let before = rig.log().await.len();
    let unknown = rig.post("/faults", json!({"type": "corupt_checksum"})).await;
    unknown.rejects(StatusCode::BAD_REQUEST, "type");
    assert_eq!(unknown.json()["value"], "corupt_checksum");
    assert!(unknown.json()["error"].as_str().unwrap().contains("unknown fault type"));
    let bad_trigger = rig.post("/faults", json!({"type": "drop", "every": 0})).await;
    bad_trigger.rejects(StatusCode::BAD_REQUEST, "every");
    rig.post("/faults", json!({"type": "drop", "at": "soon"}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "at");
    rig.post("/faults", json!({"type": "corrupt_checksum", "xor": 300}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "xor");
    rig.post("/faults", json!({"type": "drop", "evry": 2}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "evry");
    rig.post("/faults", json!([1]))
        .await
        .rejects(StatusCode::BAD_REQUEST, "body");
    rig.call(Method::DELETE, "/faults/nope", None)
        .await
        .rejects(StatusCode::NOT_FOUND, "name");
    rig.post("/connections/99/close", json!({}))
        .await
        .rejects(StatusCode::NOT_FOUND, "id");
    rig.post("/connections/one/close", json!({}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "id");
    let path = format!("/connections/{}/explode", ids[0]);
    rig.post(&path, json!({}))
        .await
        .rejects(StatusCode::NOT_FOUND, "action");
    let storm = rig.post("/storm", json!({"fraction": 1.5})).await;
    storm.rejects(StatusCode::BAD_REQUEST, "fraction");
    assert_eq!(storm.json()["value"], 1.5);
    rig.post("/storm", json!({"fraction": 0.5, "mode": "zap"}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "mode");
    rig.post("/storm", json!({"fraction": 0.5, "sead": 1}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "sead");
    rig.get("/log?since=x").await.rejects(StatusCode::BAD_REQUEST, "since");
    rig.get("/log?since=999999")
        .await
        .rejects(StatusCode::BAD_REQUEST, "since");
    // A name in use is a conflict, and the first fault of that name stays as it was.
    assert_eq!(
        rig.post("/faults", json!({"type": "drop", "name": "d", "times": 1}))
            .await
            .status,
        StatusCode::CREATED
    );
    rig.post("/faults", json!({"type": "duplicate", "name": "d"}))
        .await
        .rejects(StatusCode::CONFLICT, "name");
    // Nothing changed: one fault (the good one), the connection open, one control event.
    let faults = rig.get("/faults").await.json();
    assert_eq!(faults.as_array().unwrap().len(), 1);
    assert_eq!(faults[0]["type"], "drop");
    assert_eq!(rig.gw.live_connections(), ids);
    let log = rig.log().await;
    let after: Vec<&Value> = controls(&log[before..]).into_iter().map(|r| &r["action"]).collect();
    assert_eq!(after, ["fault_added"]);
}

#[tokio::test]
async fn one_chosen_connection_is_closed_and_another_stalled_while_a_third_goes_on() {
    let rig = rig(40, 50, 10_000).await;
    let mut a = rig.connect("/a").await;
    let mut b = rig.connect("/b").await;
    let mut c = rig.connect("/c").await;
    rig.wait_open(3).await;
    let conns = rig.get("/connections").await.json();
    let id_of = |path: &str| {
        conns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["session"] == path)
            .and_then(|c| c["id"].as_u64())
            .unwrap()
    };
    let (ia, ib) = (id_of("/a"), id_of("/b"));
    let r = rig.post(&format!("/connections/{ia}/close"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let close = loop {
        match a.next().await {
            Some(Ok(WsMessage::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    assert_eq!(
        rig.post(&format!("/connections/{ib}/stall"), json!({})).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = |v: &Value, id: u64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["messages_sent"].as_u64())
    };
    let before = rig.get("/connections").await.json();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rig.get("/connections").await.json();
    assert_eq!(sent(&before, ia), None, "closed: not listed");
    assert_eq!(sent(&before, ib), sent(&after, ib), "stalled: nothing more sent");
    let ic = id_of("/c");
    assert!(sent(&after, ic) > sent(&before, ic), "the third goes on");
    // The stalled socket stays open and silent.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(10), b.next()).await {}
    assert!(
        tokio::time::timeout(Duration::from_millis(200), b.next())
            .await
            .is_err()
    );
    assert!(c.next().await.is_some());
    let log = rig.log().await;
    let commands: Vec<(u64, &Value)> = controls(&log)
        .iter()
        .map(|r| (r["conn"].as_u64().unwrap(), &r["command"]))
        .collect();
    assert_eq!(commands, [(ia, &json!("close")), (ib, &json!("stall"))]);
    let hows: Vec<(u64, &Value, &Value)> = log
        .iter()
        .filter(|r| r["type"] == "closed")
        .map(|r| (r["conn"].as_u64().unwrap(), &r["how"], &r["mode"]))
        .collect();
    let api = json!("api");
    assert_eq!(hows, [(ia, &api, &json!("close")), (ib, &api, &json!("stall"))]);
}

/// Six connections, a storm of half of them with seed 11: the same three every time.
async fn storm_once(seed: u64) -> (Vec<u64>, Vec<u64>) {
    let rig = rig(40, 50, 10_000).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(rig.connect(&format!("/t{i}")).await);
        rig.wait_open(i + 1).await;
    }
    let r = rig
        .post("/storm", json!({"fraction": 0.5, "mode": "abort", "seed": seed}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let chosen: Vec<u64> = r.json()["conns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    rig.wait_open(3).await;
    let log = rig.log().await;
    let storm = controls(&log)
        .into_iter()
        .find(|r| r["action"] == "storm")
        .unwrap()
        .clone();
    assert_eq!(storm["conns"], json!(chosen));
    let mut closed: Vec<u64> = log
        .iter()
        .filter(|r| r["type"] == "closed" && r["how"] == "api" && r["mode"] == "abort")
        .map(|r| r["conn"].as_u64().unwrap())
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, chosen, "each chosen connection logged closed how=api");
    (chosen, rig.gw.live_connections())
}

#[tokio::test]
async fn a_seeded_storm_drops_the_same_connections_every_time() {
    let (first, left) = storm_once(11).await;
    assert_eq!(first.len(), 3);
    assert!(
        first.iter().all(|c| !left.contains(c)),
        "{first:?} dropped, {left:?} left"
    );
    for _ in 0..2 {
        assert_eq!(storm_once(11).await.0, first);
    }
}

#[tokio::test]
async fn the_log_ring_reads_from_a_cursor_and_says_what_it_dropped() {
    let rig = rig(6, 10, 4).await;
    let mut ws = rig.connect("/").await;
    let mut dec = Decoder::default();
    for _ in 0..6 {
        next_decodes(&mut ws, &mut dec).await;
    }
    // accepted + 6 offered = 7 records, 4 kept.
    let all = rig.get("/log?since=0").await;
    assert_eq!((all.next, all.dropped), (Some(7), Some(3)), "{}", all.body);
    assert_eq!(all.body.lines().count(), 4);
    let first: Value = serde_json::from_str(all.body.lines().next().unwrap()).unwrap();
    assert_eq!(first["index"], 3, "the oldest kept is the third offer");
    let tail = rig.get("/log?since=5").await;
    assert_eq!(
        (tail.next, tail.dropped, tail.body.lines().count()),
        (Some(7), Some(0), 2)
    );
    let none = rig.get("/log?since=7").await;
    assert_eq!((none.next, none.dropped, none.body.as_str()), (Some(7), Some(0), ""));
    rig.post("/pause", json!({})).await;
    let more = rig.get("/log?since=7").await;
    assert_eq!(more.body.lines().count(), 1, "the pause is logged");
    assert!(more.body.contains(r#""type":"control","action":"pause""#));
}

#[tokio::test]
async fn pause_stops_the_feed_resume_continues_and_reset_zeroes_the_counters() {
    let rig = rig(100, 20, 10_000).await;
    let mut ws = rig.connect("/").await;
    let mut dec = Decoder::default();
    next_decodes(&mut ws, &mut dec).await;
    let r = rig.post("/pause", json!({})).await;
    assert_eq!(r.json(), json!({"paused": true, "changed": true}));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = |v: Value| v[0]["messages_sent"].as_u64().unwrap();
    let paused_at = sent(rig.get("/connections").await.json());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sent(rig.get("/connections").await.json()),
        paused_at,
        "nothing sent while paused"
    );
    rig.post("/resume", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resumed = sent(rig.get("/connections").await.json());
    assert!(resumed > paused_at, "resumed");
    assert_eq!(rig.post("/reset", json!({})).await.status, StatusCode::NO_CONTENT);
    rig.post("/pause", json!({})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_reset = sent(rig.get("/connections").await.json());
    // Compared with the count just before the reset (10 or so messages at 20 ms apart), not
    // with the first pause's (1 or 2: a message slipping in before the second pause equalled it).
    assert!(
        after_reset < resumed,
        "reset: {after_reset} counted since, {resumed} before"
    );
    let log = rig.log().await;
    let actions: Vec<&Value> = controls(&log).iter().map(|r| &r["action"]).collect();
    assert_eq!(actions, ["pause", "resume", "reset", "pause"]);
    // Nothing offered between the first pause and the resume.
    let (p, r) = (
        log.iter().position(|r| r["action"] == "pause").unwrap(),
        log.iter().position(|r| r["action"] == "resume").unwrap(),
    );
    assert!(log[p..r].iter().all(|r| r["type"] != "offered"));
}

#[tokio::test]
async fn a_fault_changed_in_place_acts_from_the_next_message_in_its_place() {
    let rig = rig(4, 600, 1000).await;
    rig.post("/pause", json!({})).await;
    let mut ws = rig.connect("/").await;
    let mut dec = Decoder::default();
    let cc = json!({"type": "corrupt_checksum", "name": "cc", "every": 100});
    assert_eq!(rig.post("/faults", cc).await.status, StatusCode::CREATED);
    let dup = json!({"type": "duplicate", "name": "dup", "msg_id": "0x0200"});
    assert_eq!(rig.post("/faults", dup).await.status, StatusCode::CREATED);
    rig.post("/resume", json!({})).await;
    assert!(
        next_decodes(&mut ws, &mut dec).await,
        "every 100: the first message passes"
    );
    rig.post("/pause", json!({})).await;
    let changed = rig.patch("/faults/cc", json!({"every": null, "at": 2, "xor": 5})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let now = json!({"name": "cc", "type": "corrupt_checksum", "direction": "to_client", "xor": 5, "at": 2});
    assert_eq!(changed.json(), now);
    let listed = rig.get("/faults").await.json();
    assert_eq!(listed[0], now, "in its place, before dup");
    assert_eq!(listed[1]["name"], "dup");
    rig.post("/resume", json!({})).await;
    assert!(
        !next_decodes(&mut ws, &mut dec).await,
        "the 2nd message counted on: corrupted"
    );
    assert!(next_decodes(&mut ws, &mut dec).await, "at = 2 fired once");
    let log = rig.log().await;
    let change = controls(&log)
        .into_iter()
        .find(|r| r["action"] == "fault_changed")
        .unwrap();
    assert_eq!((&change["name"], &change["spec"]["at"]), (&json!("cc"), &json!(2)));
    let corrupted: Vec<&Value> = log.iter().filter(|r| r["fault"] == "cc").map(|r| &r["msg"]).collect();
    assert_eq!(corrupted, [2]);
    let detail = log.iter().find(|r| r["fault"] == "cc").unwrap()["detail"]
        .as_str()
        .unwrap();
    let (_, change) = detail.split_once("check ").unwrap_or_else(|| panic!("{detail}"));
    let byte = |s: &str| u8::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
    let (old, new) = change.split_once(" -> ").unwrap();
    assert_eq!(byte(old) ^ byte(new), 5, "the new xor: {detail}");
}

#[tokio::test]
async fn a_rejected_change_names_the_field_and_changes_nothing() {
    let rig = rig(2, 50, 1000).await;
    let _ws = rig.connect("/").await;
    rig.wait_open(1).await;
    let d = json!({"type": "drop", "name": "d", "every": 3});
    assert_eq!(rig.post("/faults", d).await.status, StatusCode::CREATED);
    let before = rig.get("/faults").await.json();
    let log_before = rig.log().await.len();
    rig.patch("/faults/nope", json!({"every": 2}))
        .await
        .rejects(StatusCode::NOT_FOUND, "name");
    let zero = rig.patch("/faults/d", json!({"every": 0})).await;
    zero.rejects(StatusCode::BAD_REQUEST, "every");
    assert_eq!(zero.json()["value"], 0);
    let ty = rig.patch("/faults/d", json!({"type": "duplicate"})).await;
    ty.rejects(StatusCode::BAD_REQUEST, "type");
    assert_eq!(ty.json()["value"], "duplicate");
    rig.patch("/faults/d", json!({"direction": "to_gateway"}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "direction");
    rig.patch("/faults/d", json!({"name": "e"}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "name");
    rig.patch("/faults/d", json!({"evry": 2}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "evry");
    rig.patch("/faults/d", json!({"unit": "packet"}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "unit");
    rig.patch("/faults/d", json!([1]))
        .await
        .rejects(StatusCode::BAD_REQUEST, "body");
    assert_eq!(rig.get("/faults").await.json(), before);
    let log = rig.log().await;
    assert!(controls(&log[log_before..]).is_empty(), "{:?}", &log[log_before..]);
}

/// The bytes connection `/b` receives: `/a` connects first (so `/b` is connection 2 either
/// way), then `setup` runs, then `/b` reads `n` messages.
async fn bytes_of_b(rig: &Rig, n: usize) -> Vec<Vec<u8>> {
    let mut b = rig.connect("/b").await;
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), b.next()).await {
            Ok(Some(Ok(WsMessage::Binary(m)))) => got.push(m.to_vec()),
            Ok(Some(Ok(_))) => {}
            other => panic!("/b: {other:?}"),
        }
    }
    got
}

#[tokio::test]
async fn a_session_created_after_a_change_draws_as_if_configured_so_from_the_start() {
    let flip = json!({"type": "flip_byte", "name": "f", "every": 3});
    let changed = rig(6, 10, 1000).await;
    let _a = changed.connect("/a").await;
    changed.wait_open(1).await;
    assert_eq!(changed.post("/faults", flip.clone()).await.status, StatusCode::CREATED);
    let r = changed.patch("/faults/f", json!({"every": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after_change = bytes_of_b(&changed, 6).await;
    let configured = rig(6, 10, 1000).await;
    let _a = configured.connect("/a").await;
    configured.wait_open(1).await;
    let mut from_start = flip;
    from_start["every"] = json!(1);
    assert_eq!(configured.post("/faults", from_start).await.status, StatusCode::CREATED);
    assert_eq!(bytes_of_b(&configured, 6).await, after_change);
    let clean = items(6, 10).map(|i| i.bytes).collect::<Vec<_>>();
    assert!(
        after_change.iter().zip(&clean).all(|(a, c)| a != c),
        "every message flipped"
    );
}

#[tokio::test]
async fn a_stall_for_ms_silences_one_connection_for_that_long() {
    let rig = rig(200, 20, 10_000).await;
    let _ws = rig.connect("/").await;
    let id = rig.wait_open(1).await[0];
    let path = format!("/connections/{id}/stall");
    for (body, field) in [
        (json!({"for_ms": 0}), "for_ms"),
        (json!({"for_ms": "soon"}), "for_ms"),
        (json!({"ms": 5}), "ms"),
    ] {
        rig.post(&path, body).await.rejects(StatusCode::BAD_REQUEST, field);
    }
    rig.post(&format!("/connections/{id}/close"), json!({"for_ms": 5}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "for_ms");
    rig.post("/storm", json!({"fraction": 1.0, "mode": "abort", "for_ms": 5}))
        .await
        .rejects(StatusCode::BAD_REQUEST, "for_ms");
    assert!(controls(&rig.log().await).is_empty(), "rejected: nothing logged");
    let ordered = std::time::Instant::now();
    let r = rig.post(&path, json!({"for_ms": 1000})).await;
    assert_eq!(r.json(), json!({"id": id, "command": "stall", "for_ms": 1000}));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stalled = rig.sent(id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.sent(id).await, stalled, "nothing sent during the stall");
    while rig.sent(id).await == stalled {
        assert!(ordered.elapsed() < Duration::from_secs(10), "the stall never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ordered.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        ordered.elapsed()
    );
    let log = rig.log().await;
    let order = controls(&log)[0];
    assert_eq!((&order["command"], &order["for_ms"]), (&json!("stall"), &json!(1000)));
    let stall = log.iter().find(|r| r["type"] == "closed").unwrap();
    assert_eq!(
        (&stall["how"], &stall["mode"], &stall["for_ms"]),
        (&json!("api"), &json!("stall"), &json!(1000))
    );
}

#[tokio::test]
async fn while_paused_the_clients_commands_are_still_answered() {
    let feed = |_: &str| -> Box<dyn Feed> { Box::new(Answering(ListFeed::new(items(50, 20)))) };
    let rig = rig_with(feed, 10_000).await;
    let mut ws = rig.connect("/").await;
    let mut dec = Decoder::default();
    next_decodes(&mut ws, &mut dec).await;
    rig.post("/pause", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {}
    futures_util::SinkExt::send(&mut ws, WsMessage::Binary(frame(7).into()))
        .await
        .unwrap();
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(WsMessage::Binary(b)))) => break b.to_vec(),
            Ok(Some(Ok(_))) => {}
            other => panic!("no answer while paused: {other:?}"),
        }
    };
    assert_eq!(answer, frame(ANSWER), "the answer, not the feed");
    let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "the feed stays paused: {quiet:?}");
    rig.post("/resume", json!({})).await;
    assert!(next_decodes(&mut ws, &mut dec).await, "the feed again");
    let log = rig.log().await;
    let p = log.iter().position(|r| r["action"] == "pause").unwrap();
    let r = log.iter().position(|r| r["action"] == "resume").unwrap();
    let offered: Vec<&Value> = log[p..r].iter().filter(|r| r["type"] == "offered").collect();
    assert_eq!(offered.len(), 1, "only the answer offered while paused: {offered:?}");
    assert!(
        offered[0]["frames"][0].as_str().unwrap().ends_with("#999"),
        "{offered:?}"
    );
}

/// Kills the child if the test fails before it is done.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_prints_the_control_address_right_after_the_listening_line() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(["serve", "--control", "--quiet", "--control-log-capacity", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _guard = Child(child);
    let mut lines = [String::new(), String::new()];
    for l in &mut lines {
        out.read_line(l).unwrap();
    }
    assert!(lines[0].starts_with("listening on ws://127.0.0.1:"), "{lines:?}");
    let api = lines[1]
        .trim_end()
        .strip_prefix("control on ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(api.starts_with("http://127.0.0.1:") && !api.ends_with(":0"), "{api}");
    let http: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = http.get(format!("{api}/faults").parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"[]");
}

/// `serve ARGS`' exit status and stderr; `None` if it was still serving after 5 s (killed).
fn serve_refused(args: &[&str]) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Some((status, err));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(Child(child));
    None
}

#[test]
fn control_log_capacity_is_range_checked_and_needs_control() {
    let (status, err) = serve_refused(&["--control", "--control-log-capacity", "0"]).expect("refused at once");
    assert!(!status.success());
    assert!(
        err.contains("--control-log-capacity") && err.contains("1..=10000000"),
        "{err}"
    );
    let (status, err) = serve_refused(&["--control-log-capacity", "5"]).expect("refused at once");
    assert!(!status.success());
    assert!(err.contains("--control"), "{err}");
}
