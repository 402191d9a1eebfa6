//! Unit tests of [`super::Pipeline`]: faults added, removed and changed at run time.

use super::*;

/// A 2013 heartbeat of 13800000001, serial 1, check code right.
fn frame() -> Vec<u8> {
    hex::decode("7e0002000001380000000100013b7e").expect("hex")
}

fn corrupt() -> FaultSpec {
    FaultSpec::parse_cli(r#"type="corrupt_checksum""#).expect("spec")
}

fn sent(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

/// An added fault acts on an open connection from its next message; removed, it stops.
#[test]
fn a_fault_added_at_run_time_acts_from_the_next_message_until_removed() {
    let mut p = Pipeline::new(&[], 9, 0).expect("pipeline");
    let t = Duration::ZERO;
    assert_eq!(p.on_connect(1, t), ConnectDecision::Accept);
    let before = sent(&p.on_message(1, Direction::ToClient, frame(), t));
    assert_eq!(before, vec![frame()]);
    p.add(corrupt(), "cc".into()).expect("added");
    assert_eq!(p.active().map(|(n, _)| n).collect::<Vec<_>>(), ["cc"]);
    let during = sent(&p.on_message(1, Direction::ToClient, frame(), t));
    assert_eq!(during.len(), 1);
    assert_ne!(during[0], frame(), "corrupted");
    assert!(p.remove("cc"));
    assert!(!p.remove("cc"), "gone already");
    assert_eq!(p.active().count(), 0);
    let after = sent(&p.on_message(1, Direction::ToClient, frame(), t));
    assert_eq!(after, vec![frame()]);
}

/// Seeded by position: a fault added at run time draws what it would have drawn had it been
/// configured at start.
#[test]
fn an_added_fault_is_seeded_as_if_it_had_been_there_from_the_start() {
    let t = Duration::ZERO;
    let mut from_start = Pipeline::new(&[corrupt()], 5, 0).expect("pipeline");
    from_start.on_connect(3, t);
    let mut added = Pipeline::new(&[], 5, 0).expect("pipeline");
    added.on_connect(3, t);
    added.add(corrupt(), "corrupt_checksum".into()).expect("added");
    for _ in 0..5 {
        let a = sent(&from_start.on_message(3, Direction::ToClient, frame(), t));
        let b = sent(&added.on_message(3, Direction::ToClient, frame(), t));
        assert_eq!(a, b);
    }
}

/// A bad spec is refused whole: nothing is added.
#[test]
fn an_invalid_added_spec_changes_nothing() {
    let mut p = Pipeline::new(&[], 1, 0).expect("pipeline");
    let mut bad = corrupt();
    bad.trigger.every = Some(0);
    assert!(p.add(bad, "bad".into()).is_err());
    assert_eq!(p.active().count(), 0);
}

/// Changed in place: the trigger's count goes on (every=2 from the 4th message fires on the
/// 4th and 6th), and the random stream continues (the 4th message gets the 4th draw).
#[test]
fn a_changed_fault_keeps_its_counters_and_its_random_stream() {
    let t = Duration::ZERO;
    let every = |n| FaultSpec::parse_cli(&format!(r#"type="corrupt_checksum", every={n}"#)).expect("spec");
    let mut unchanged = Pipeline::new(&[every(1)], 4, 0).expect("pipeline");
    let mut changed = Pipeline::new(&[every(1)], 4, 0).expect("pipeline");
    for p in [&mut unchanged, &mut changed] {
        p.on_connect(1, t);
    }
    let send = |p: &mut Pipeline| sent(&p.on_message(1, Direction::ToClient, frame(), t)).remove(0);
    for _ in 0..3 {
        assert_eq!(send(&mut unchanged), send(&mut changed));
    }
    assert_eq!(changed.change("corrupt_checksum", every(2)), Ok(true));
    let fourth = send(&mut unchanged);
    assert_ne!(fourth, frame());
    assert_eq!(
        send(&mut changed),
        fourth,
        "message 4: counted on (4 % 2 == 0), 4th draw"
    );
    assert_eq!(send(&mut changed), frame(), "message 5 passes");
    assert_ne!(send(&mut changed), frame(), "message 6 fires");
    assert_eq!(
        changed.active().map(|(_, s)| s.trigger.every).collect::<Vec<_>>(),
        [Some(2)]
    );
}

/// What the old instance held is still released on its schedule; the new instance takes
/// the next message.
#[test]
fn a_changed_fault_still_releases_what_its_old_instance_held() {
    let hold = |d| FaultSpec::parse_cli(&format!(r#"type="reorder", distance={d}, max_wait_ms=1000"#)).unwrap();
    let mut p = Pipeline::new(&[hold(1)], 1, 0).expect("pipeline");
    let t = Duration::ZERO;
    p.on_connect(1, t);
    assert!(
        sent(&p.on_message(1, Direction::ToClient, frame(), t)).is_empty(),
        "held"
    );
    assert_eq!(p.change("reorder", hold(2)), Ok(true));
    assert_eq!(
        p.next_deadline(1),
        Some(Duration::from_secs(1)),
        "the retired hold's deadline"
    );
    assert_eq!(sent(&p.on_tick(1, Duration::from_secs(1))), vec![frame()], "released");
    let later = Duration::from_secs(2);
    assert!(
        sent(&p.on_message(1, Direction::ToClient, frame(), later)).is_empty(),
        "new one holds"
    );
    assert_eq!(sent(&p.on_close(1, later)), vec![frame()], "given back at close");
}

/// A connection opened after a change gets the changed fault as if configured so from the
/// start; a change of type or direction is refused and changes nothing.
#[test]
fn a_change_applies_to_later_connections_and_keeps_type_and_direction() {
    let t = Duration::ZERO;
    let spec = |x| FaultSpec::parse_cli(&format!(r#"type="corrupt_checksum", every={x}"#)).unwrap();
    let mut p = Pipeline::new(&[spec(1)], 6, 0).expect("pipeline");
    assert_eq!(p.change("corrupt_checksum", spec(2)), Ok(true));
    let mut from_start = Pipeline::new(&[spec(2)], 6, 0).expect("pipeline");
    p.on_connect(2, t);
    from_start.on_connect(2, t);
    for _ in 0..4 {
        let a = sent(&p.on_message(2, Direction::ToClient, frame(), t));
        assert_eq!(a, sent(&from_start.on_message(2, Direction::ToClient, frame(), t)));
    }
    let mut other = spec(2);
    other.direction = Direction::ToGateway;
    assert!(p.change("corrupt_checksum", other).is_err());
    assert!(
        p.change("corrupt_checksum", FaultSpec::parse_cli(r#"type="drop""#).unwrap())
            .is_err()
    );
    assert_eq!(p.change("nope", spec(3)), Ok(false));
    assert_eq!(p.active().map(|(_, s)| s.clone()).collect::<Vec<_>>(), [spec(2)]);
}

/// After a reset a fault that used its `times` fires again.
#[test]
fn reset_counters_rearms_times() {
    let once = FaultSpec::parse_cli(r#"type="corrupt_checksum", times=1"#).expect("spec");
    let mut p = Pipeline::new(&[once], 2, 0).expect("pipeline");
    let t = Duration::ZERO;
    p.on_connect(1, t);
    let changed = |p: &mut Pipeline| sent(&p.on_message(1, Direction::ToClient, frame(), t))[0] != frame();
    assert!(changed(&mut p));
    assert!(!changed(&mut p));
    p.reset_counters();
    assert!(changed(&mut p));
}
