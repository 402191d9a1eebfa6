//! The control API over HTTP+JSON (axum), `serve --control ADDR`. Routes map one to one onto the
//! [`Gateway`] operations of [`super`]; bodies are parsed here into fields so that a rejected
//! request is answered with the field and value at fault:
//! `{"error": "...", "field": "fraction", "value": 2.0}` (400, 404 or 409).
//!
//! `GET /log?since=N` answers JSON Lines (`application/x-ndjson`), one gateway record per line,
//! with the cursor to ask for next in the `X-Log-Next` header and the records lost to the ring
//! between `since` and the oldest kept in `X-Log-Dropped` (0 when nothing was lost).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Map, Value, json};

use super::{RejectKind, Rejected};
use crate::faults::{FAULT_TYPES, FaultSpec};
use crate::gateway::{ConnCommand, Gateway};

/// Header of `GET /log`: the cursor to pass as `since` next.
pub const LOG_NEXT_HEADER: &str = "x-log-next";
/// Header of `GET /log`: records overwritten in the ring before this reader got them.
pub const LOG_DROPPED_HEADER: &str = "x-log-dropped";

/// The routes, over `gw`.
pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/faults", get(list_faults).post(add_fault))
        .route("/faults/{name}", delete(remove_fault).patch(change_fault))
        .route("/connections", get(list_connections))
        .route("/connections/{id}/{action}", post(command_connection))
        .route("/storm", post(storm))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/log", get(read_log))
        .route("/reset", post(reset))
        .with_state(gw)
}

/// Serves the control API on `listener` until `stop` resolves.
pub async fn serve(
    gw: Gateway,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(gw)).with_graceful_shutdown(stop).await
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let status = match self.kind {
            RejectKind::Invalid => StatusCode::BAD_REQUEST,
            RejectKind::NotFound => StatusCode::NOT_FOUND,
            RejectKind::Conflict => StatusCode::CONFLICT,
        };
        let body = json!({"error": self.message, "field": self.field, "value": self.value});
        (status, axum::Json(body)).into_response()
    }
}

/// A fault as `GET /faults` lists it: `name` first, then the spec's flat keys.
fn fault_json(name: &str, spec: &FaultSpec) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    if let Ok(Value::Object(o)) = serde_json::to_value(spec) {
        m.extend(o.into_iter().filter(|(k, _)| k != "name"));
    }
    Value::Object(m)
}

async fn list_faults(State(gw): State<Gateway>) -> axum::Json<Value> {
    let all = gw.faults().iter().map(|(n, s)| fault_json(n, s)).collect();
    axum::Json(Value::Array(all))
}

/// The body as a JSON object, or which part of it is not one.
fn object(body: &[u8]) -> Result<Map<String, Value>, Rejected> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(Rejected::new("body", other, "expected a JSON object")),
        Err(e) => {
            let why = format!("not JSON: {e} (line {}, column {})", e.line(), e.column());
            Err(Rejected::new("body", String::from_utf8_lossy(body).into_owned(), why))
        }
    }
}

/// `POST /faults`: a scenario `[[faults]]` entry as JSON, read by the same [`FaultSpec`] code
/// (and limits) as `--fault` and scenario files.
async fn add_fault(State(gw): State<Gateway>, body: axum::body::Bytes) -> Result<Response, Rejected> {
    let obj = object(&body)?;
    let spec: FaultSpec =
        serde_json::from_value(Value::Object(obj.clone())).map_err(|e| spec_rejected(&obj, &e.to_string()))?;
    let name = gw.add_fault(spec.clone())?;
    Ok((StatusCode::CREATED, axum::Json(fault_json(&name, &spec))).into_response())
}

/// `PATCH /faults/{name}`: a JSON Merge Patch (RFC 7396) of the fault as `GET /faults` shows it:
/// a key given replaces its value, `null` removes it (back to its default). The result is read
/// by the same code as `POST /faults`; the fault keeps its name, type and direction. Answers the
/// fault as it is now.
async fn change_fault(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, Rejected> {
    let patch = object(&body)?;
    let spec = gw.change_fault(&name, |current| {
        let mut merged = fault_json(&name, current);
        json_patch::merge(&mut merged, &Value::Object(patch.clone()));
        let Value::Object(obj) = merged else {
            unreachable!("a merge patch of an object into an object is an object")
        };
        serde_json::from_value(Value::Object(obj.clone())).map_err(|e| {
            let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
            spec_rejected_among(&obj, &keys, &e.to_string())
        })
    })?;
    Ok(axum::Json(fault_json(&name, &spec)))
}

/// Names the field a spec error is about: `type` when the type is missing or unknown; else the
/// first key whose removal changes the error (serde's messages do not always name the key: an
/// out-of-range `xor` reads "invalid value: integer `300`, expected u8"); else `type`.
fn spec_rejected(obj: &Map<String, Value>, message: &str) -> Rejected {
    spec_rejected_among(obj, &[], message)
}

/// [`spec_rejected`], trying the keys of `first` (a patch's) before the others.
fn spec_rejected_among(obj: &Map<String, Value>, first: &[&str], message: &str) -> Rejected {
    let ty = obj.get("type");
    let known = ty.and_then(Value::as_str).is_some_and(|t| FAULT_TYPES.contains(&t));
    let field = if known {
        let parse = |o: Map<String, Value>| serde_json::from_value::<FaultSpec>(Value::Object(o));
        let rest = obj.keys().map(String::as_str).filter(|k| !first.contains(k));
        first
            .iter()
            .copied()
            .filter(|k| obj.contains_key(*k))
            .chain(rest)
            .filter(|k| *k != "type")
            .find(|k| {
                let mut without = obj.clone();
                without.remove(*k);
                parse(without).err().is_none_or(|e| e.to_string() != message)
            })
            .unwrap_or("type")
    } else {
        "type"
    };
    let value = obj.get(field).cloned().unwrap_or(Value::Null);
    Rejected::new(field, value, message)
}

async fn remove_fault(State(gw): State<Gateway>, Path(name): Path<String>) -> Result<StatusCode, Rejected> {
    gw.remove_fault(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_connections(State(gw): State<Gateway>) -> axum::Json<Value> {
    axum::Json(json!(gw.connections()))
}

/// `close`, `abort` or `stall`.
fn command(field: &str, s: &str) -> Result<ConnCommand, Rejected> {
    match s {
        "close" => Ok(ConnCommand::Close),
        "abort" => Ok(ConnCommand::Abort),
        "stall" => Ok(ConnCommand::Stall),
        _ => Err(Rejected::new(field, s, "one of: close, abort, stall")),
    }
}

/// A stall's optional `for_ms` (the `stall` fault's key), taken out of `obj`.
fn for_ms(obj: &mut Map<String, Value>) -> Result<Option<u64>, Rejected> {
    match obj.remove("for_ms") {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ms) => Ok(Some(ms)),
            None => Err(Rejected::new("for_ms", v, "a whole number of milliseconds")),
        },
    }
}

/// The first key left in a body that took only `fields`, as an error.
fn no_more(obj: Map<String, Value>, fields: &str) -> Result<(), Rejected> {
    match obj.into_iter().next() {
        Some((k, v)) => Err(Rejected::new(&k, v, format!("unknown field (fields: {fields})"))),
        None => Ok(()),
    }
}

/// `POST /connections/{id}/close|abort|stall`; a stall's body may give `{"for_ms": N}`.
async fn command_connection(
    State(gw): State<Gateway>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Rejected> {
    let cmd = command("action", &action).map_err(|r| Rejected {
        kind: RejectKind::NotFound,
        ..r
    })?;
    let id: u64 = id
        .parse()
        .map_err(|_| Rejected::new("id", id.as_str(), "a connection id: a whole number (GET /connections)"))?;
    let mut obj = object(&body)?;
    let for_ms = for_ms(&mut obj)?;
    no_more(obj, "for_ms, with stall")?;
    gw.command_connection(id, cmd, for_ms)?;
    let mut answer = json!({"id": id, "command": cmd});
    if let Some(ms) = for_ms {
        answer["for_ms"] = ms.into();
    }
    Ok(axum::Json(answer).into_response())
}

/// `POST /storm {"fraction": 0.5, "mode": "close", "seed": 7}`; `seed` defaults to the gateway's;
/// `for_ms` with `"mode": "stall"` ends the stalls after that long.
async fn storm(State(gw): State<Gateway>, body: axum::body::Bytes) -> Result<axum::Json<Value>, Rejected> {
    let mut obj = object(&body)?;
    let fraction = match obj.remove("fraction") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(v) => return Err(Rejected::new("fraction", v, "a number within 0.0..=1.0")),
        None => {
            return Err(Rejected::new(
                "fraction",
                Value::Null,
                "missing (a number within 0.0..=1.0)",
            ));
        }
    };
    let mode = match obj.remove("mode") {
        None => ConnCommand::Close,
        Some(Value::String(s)) => command("mode", &s)?,
        Some(v) => return Err(Rejected::new("mode", v, "one of: close, abort, stall")),
    };
    let seed = match obj.remove("seed") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| Rejected::new("seed", v, "a whole number 0..=2^64-1"))?,
        ),
    };
    let for_ms = for_ms(&mut obj)?;
    no_more(obj, "fraction, mode, seed, for_ms")?;
    let conns = gw.storm(fraction, mode, seed, for_ms)?;
    Ok(axum::Json(json!({"mode": mode, "conns": conns})))
}

async fn pause(State(gw): State<Gateway>) -> axum::Json<Value> {
    let changed = gw.set_paused(true);
    axum::Json(json!({"paused": true, "changed": changed}))
}

async fn resume(State(gw): State<Gateway>) -> axum::Json<Value> {
    let changed = gw.set_paused(false);
    axum::Json(json!({"paused": false, "changed": changed}))
}

async fn reset(State(gw): State<Gateway>) -> StatusCode {
    gw.reset_counters();
    StatusCode::NO_CONTENT
}

async fn read_log(
    State(gw): State<Gateway>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, Rejected> {
    let since = match q.get("since") {
        None => 0,
        Some(s) => s
            .parse()
            .map_err(|_| Rejected::new("since", s.as_str(), "a cursor: a whole number (X-Log-Next)"))?,
    };
    let slice = gw.control_log(since)?;
    let mut body = String::new();
    for r in &slice.records {
        if let Ok(line) = serde_json::to_string(r) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(LOG_NEXT_HEADER, HeaderValue::from(slice.next));
    headers.insert(LOG_DROPPED_HEADER, HeaderValue::from(slice.dropped));
    Ok((headers, body).into_response())
}
