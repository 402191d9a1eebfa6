//! The recording proxy over real loopback sockets: a tiny tokio-tungstenite gateway upstream
//! (feeds one frame, echoes everything), the recorder on port 0 in front of it, clients through
//! it. Checks what each side received and the capture, record by record.
//!
//! The clock is tokio's paused clock, and the recorder runs with its connect timeout and close
//! grace disabled: with real sockets, any pending timer lets the paused clock jump whenever the
//! runtime parks, so the only timer allowed is the test's own `sleep`. The clock then stands
//! still except across that sleep, and every offset in the capture is exact.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::capture::{CaptureReader, Payload, Record, RecordKind, RecordOpts, Recorder, Side};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message as Jt808, Phone, Version};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What the upstream gateway serves first on every connection: an 18-byte envelope and a 0x0200.
fn feed() -> Vec<u8> {
    let mut v = vec![0xAB; 18];
    let loc = Jt808::new(
        0x0200,
        Version::V2013,
        Phone::parse("13800138000").unwrap(),
        1,
        Body::Raw(RawBody { raw: vec![0x7E; 28] }),
    );
    v.extend(loc.encode());
    v
}

/// An upstream gateway: sends [`feed`] to each connection, then echoes binary and text messages.
/// Reports each request's path and every message it received.
async fn start_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Message)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (path_tx, path_rx) = std::sync::mpsc::channel();
                #[allow(clippy::result_large_err)] // tungstenite's callback error type
                let cb = move |req: &Request, resp: Response| {
                    let _ = path_tx.send(req.uri().to_string());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                    return;
                };
                let path = path_rx.recv().unwrap_or_default();
                let _ = tx.send((path.clone(), Message::Text("<connected>".into())));
                if ws.send(Message::Binary(feed().into())).await.is_err() {
                    return;
                }
                while let Some(Ok(m)) = ws.next().await {
                    let _ = tx.send((path.clone(), m.clone()));
                    if matches!(m, Message::Binary(_) | Message::Text(_)) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn opts(upstream: SocketAddr, out: &Path) -> RecordOpts {
    let mut o = RecordOpts::new("127.0.0.1:0".parse().unwrap(), format!("ws://{upstream}"), out);
    o.connect_timeout_ms = 0;
    o.close_grace_ms = 0;
    o.handshake_timeout_ms = 0;
    o
}

fn read_capture(path: &Path) -> (usize, Vec<Record>) {
    let mut reader = CaptureReader::open(path).unwrap();
    let prefix = reader.header().prefix_len;
    let records: Vec<Record> = reader.by_ref().map(|r| r.unwrap()).collect();
    assert!(reader.truncated().is_none());
    (prefix, records)
}

#[tokio::test(start_paused = true)]
async fn recorder_relays_both_ways_untouched_and_records_every_message_with_its_offset() {
    let (upstream, mut seen) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.jsonl");
    let recorder = Recorder::bind(opts(upstream, &out)).await.unwrap();
    let addr = recorder.local_addr();
    assert_ne!(addr.port(), 0, "port 0 resolves to the bound port");
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/live?sim=1"))
        .await
        .unwrap();
    // Gateway -> client, untouched.
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(feed().into()));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hello = vec![0x7E, 0x00, 0x7D, 0x01, 0x7E];
    ws.send(Message::Binary(hello.clone().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(hello.clone().into()));
    ws.send(Message::Text("hi ✓".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("hi ✓".into()));

    // A ping goes through to the gateway and its pong comes back (the recorder's own automatic
    // pong may arrive too; see the record module doc).
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    let mut pongs = 0;
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"p");
                pongs += 1;
            }
            Message::Binary(b) => {
                assert_eq!(&b[..], [1]);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pongs >= 1);

    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected the close reply, got {other:?}"),
    }

    // What the gateway received, and from which path.
    let mut upstream_saw = Vec::new();
    while upstream_saw
        .last()
        .map(|(_, m)| !matches!(m, Message::Close(_)))
        .unwrap_or(true)
    {
        upstream_saw.push(seen.recv().await.unwrap());
    }
    assert!(
        upstream_saw.iter().all(|(p, _)| p == "/live?sim=1"),
        "the client's path reaches the gateway"
    );
    let msgs: Vec<Message> = upstream_saw.into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        msgs,
        vec![
            Message::Text("<connected>".into()),
            Message::Binary(hello.clone().into()),
            Message::Text("hi ✓".into()),
            Message::Ping(b"p".to_vec().into()),
            Message::Binary(vec![1].into()),
            Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into()
            })),
        ]
    );

    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.connections, 1);
    assert_eq!(
        report.bytes_gateway,
        (feed().len() + hello.len() + "hi ✓".len() + 1) as u64
    );

    let (prefix, records) = read_capture(&out);
    assert_eq!(prefix, 18);
    let t = 1_500_000;
    let msg = |t_us, from, p| Record::message(t_us, 1, from, p);
    let expected = vec![
        Record::open(0, 1),
        msg(0, Side::Gateway, Payload::Binary(feed())),
        msg(t, Side::Client, Payload::Binary(hello.clone())),
        msg(t, Side::Gateway, Payload::Binary(hello.clone())),
        msg(t, Side::Client, Payload::Text("hi ✓".into())),
        msg(t, Side::Gateway, Payload::Text("hi ✓".into())),
        msg(t, Side::Client, Payload::Binary(vec![1])),
        msg(t, Side::Gateway, Payload::Binary(vec![1])),
        Record::close(t, 1, Some(Side::Client), Some(1000), Some("done".into())),
        Record::close(t, 1, Some(Side::Gateway), Some(1000), Some("done".into())),
    ];
    // The gateway's pong races the client's next message through the two relay directions, so
    // ping and pong are checked apart from the rest: recorded once each, the pong after the ping.
    let is_control = |r: &Record| {
        matches!(
            &r.kind,
            RecordKind::Message {
                payload: Payload::Ping(_) | Payload::Pong(_),
                ..
            }
        )
    };
    let control: Vec<(usize, &Record)> = records.iter().enumerate().filter(|(_, r)| is_control(r)).collect();
    assert_eq!(control.len(), 2, "{control:?}");
    assert_eq!(control[0].1, &msg(t, Side::Client, Payload::Ping(b"p".to_vec())));
    assert_eq!(control[1].1, &msg(t, Side::Gateway, Payload::Pong(b"p".to_vec())));
    let rest: Vec<Record> = records.iter().filter(|r| !is_control(r)).cloned().collect();
    assert_eq!(rest, expected);
    assert_eq!(report.records, records.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn concurrent_connections_get_their_own_ids_and_shutdown_closes_them_with_1001() {
    let (upstream, _seen) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two.jsonl");
    let recorder = Recorder::bind(opts(upstream, &out)).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));

    let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    a.next().await.unwrap().unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    b.next().await.unwrap().unwrap();
    // Interleave traffic of the two connections, many messages each.
    for i in 0..50u8 {
        a.send(Message::Binary(vec![b'a', i].into())).await.unwrap();
        b.send(Message::Binary(vec![b'b', i].into())).await.unwrap();
    }
    for i in 0..50u8 {
        assert_eq!(a.next().await.unwrap().unwrap(), Message::Binary(vec![b'a', i].into()));
        assert_eq!(b.next().await.unwrap().unwrap(), Message::Binary(vec![b'b', i].into()));
    }

    stop.send(()).unwrap();
    for ws in [&mut a, &mut b] {
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.connections, 2);

    let (_, records) = read_capture(&out);
    for conn in [1u64, 2] {
        let mine: Vec<&Record> = records.iter().filter(|r| r.conn == conn).collect();
        let from_client: Vec<Vec<u8>> = mine
            .iter()
            .filter_map(|r| match &r.kind {
                RecordKind::Message {
                    from: Side::Client,
                    payload: Payload::Binary(b),
                } => Some(b.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(from_client.len(), 50, "conn {conn}");
        let tag = from_client[0][0];
        assert!(from_client.iter().enumerate().all(|(i, m)| m == &vec![tag, i as u8]));
        assert_eq!(
            mine.last().unwrap().kind,
            RecordKind::Close {
                from: None,
                code: Some(1001),
                reason: Some("recorder shutting down".into())
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unreachable_upstream_closes_the_client_with_1011_and_is_recorded() {
    // A port that was just free: nothing listens there.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refused.jsonl");
    let recorder = Recorder::bind(opts(gone, &out)).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let (_, records) = read_capture(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0], Record::open(0, 1));
    match &records[1].kind {
        RecordKind::Close {
            from: None,
            code: Some(1011),
            reason: Some(r),
        } => assert!(r.starts_with(&format!("upstream ws://{gone}/")), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_upstream_url_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    for (url, want) in [
        ("http://127.0.0.1:1", "expected ws://"),
        ("wss://127.0.0.1:1", "wss:// is not supported"),
    ] {
        let o = RecordOpts::new("127.0.0.1:0".parse().unwrap(), url, dir.path().join("x.jsonl"));
        let err = Recorder::bind(o).await.unwrap_err().to_string();
        assert!(err.contains(want), "{url}: {err}");
    }
}

/// Real clock: the recorder's own timers must run.
#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped_and_counted() {
    let (upstream, _seen) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(upstream, &dir.path().join("slow.jsonl"));
    o.handshake_timeout_ms = 100;
    let recorder = Recorder::bind(o).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    );
    assert_eq!(
        read.await.expect("dropped in time").unwrap_or(0),
        0,
        "closed without a byte"
    );
    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!((report.handshakes_timed_out, report.connections), (1, 0));
    assert!(report.to_string().contains("1 handshakes timed out"), "{report}");
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_are_counted() {
    let (upstream, _seen) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(upstream, &dir.path().join("full.jsonl"));
    o.max_connections = 1;
    let recorder = Recorder::bind(o).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));
    let (mut first, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    first.next().await.unwrap().unwrap();
    match tokio_tungstenite::connect_async(format!("ws://{addr}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = first.next().await {}
    // The slot is free again once the first connection is gone.
    let (mut again, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    again.next().await.unwrap().unwrap();
    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!((report.connections_refused, report.connections), (1, 2));
}

#[tokio::test]
async fn a_message_over_the_size_limit_ends_its_connection_and_is_recorded_as_why() {
    let (upstream, _seen) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.jsonl");
    let mut o = opts(upstream, &out);
    o.max_message_size = 1000;
    let recorder = Recorder::bind(o).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::Binary(vec![1; 999].into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(vec![1; 999].into()));
    ws.send(Message::Binary(vec![2; 5000].into())).await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        assert!(!matches!(m, Message::Binary(ref b) if b.len() == 5000), "never relayed");
    }
    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.messages_too_large, 1);
    let (_, records) = read_capture(&out);
    let why = records.iter().find_map(|r| match &r.kind {
        RecordKind::Close {
            from: Some(Side::Client),
            reason: Some(reason),
            ..
        } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        why.is_some_and(|w| w.contains("too long") || w.contains("Space limit")),
        "{records:?}"
    );
}
