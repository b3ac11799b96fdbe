//! The connection handshake: protocol header, start / start-ok (authentication),
//! tune / tune-ok (limits), open (vhost).

use super::Reader;
use crate::auth;
use crate::broker::{AuthProtocol, Broker};
use crate::channel::ConnCtx;
use crate::error::AmqpError;
use crate::RouteTargets;
use ottermq_protocol::{
    check_protocol_header, ConnectionClose, ConnectionStart, ConnectionTune, FieldTable,
    FieldValue, Frame, LongStr, Method, ProtocolHeaderCheck, ShortStr, FRAME_MIN_SIZE,
    PROTOCOL_HEADER,
};
use std::sync::Arc;
use std::time::Duration;

/// The server-properties table sent in connection.start, with the capabilities OtterMQ has.
pub fn server_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let mut t = FieldTable::new();
    let s = |v: &str| FieldValue::LongStr(LongStr::from(v));
    t.insert("capabilities", FieldValue::Table(caps));
    t.insert("product", s("OtterMQ"));
    t.insert("version", s(env!("CARGO_PKG_VERSION")));
    t.insert("platform", s("Rust"));
    t.insert("cluster_name", s("ottermq"));
    t.insert("copyright", s("The OtterMQ authors"));
    t.insert("information", s("Licensed under MIT or Apache-2.0"));
    t
}

/// Runs the handshake. None when the client went away or was refused (the refusal has been
/// sent already).
pub(super) async fn run(broker: &Arc<Broker>, r: &mut Reader) -> Option<ConnCtx> {
    // Protocol header: answer anything else with the header we speak, then close.
    loop {
        match check_protocol_header(&r.buf) {
            ProtocolHeaderCheck::Amqp091 => break,
            ProtocolHeaderCheck::Mismatch => {
                r.handle
                    .out
                    .write(|b, _| b.extend_from_slice(PROTOCOL_HEADER));
                return None;
            }
            ProtocolHeaderCheck::Incomplete => {
                if !r.fill().await {
                    return None;
                }
            }
        }
    }
    let _ = r.buf.split_to(PROTOCOL_HEADER.len());

    r.send(
        0,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongStr::from(auth::MECHANISMS),
            locales: LongStr::from("en_US"),
        }),
    );
    let start_ok = match r.frame(FRAME_MIN_SIZE).await {
        Ok(Frame::Method {
            channel: 0,
            method: Method::ConnectionStartOk(m),
        }) => m,
        Ok(_) => {
            return refuse(
                r,
                AmqpError::command_invalid("expected connection.start-ok"),
            )
            .await
        }
        Err(Some(e)) => return refuse(r, e).await,
        Err(None) => return None,
    };
    let peer = r.handle.peer;
    let creds = match auth::parse_response(start_ok.mechanism.as_bytes(), &start_ok.response) {
        Some(c) => c,
        None if !matches!(start_ok.mechanism.as_bytes(), b"PLAIN" | b"AMQPLAIN") => {
            let e = AmqpError::command_invalid(format!(
                "unknown authentication mechanism '{}'",
                start_ok.mechanism
            ));
            return refuse(r, e).await;
        }
        None => {
            // A response that does not parse is a protocol error (502), as RabbitMQ's PLAIN
            // and AMQPLAIN mechanisms report it, not a refused login. It still counts against
            // the address's failed-login limit, or garbage would be a free way to guess.
            broker.refuse_malformed(peer.ip(), AuthProtocol::Amqp);
            let e = AmqpError::syntax_error(format!("{} response invalid", start_ok.mechanism))
                .on(10, 11);
            return refuse(r, e).await;
        }
    };
    // Failures are counted and logged (with their reason) by `authenticate`.
    let user = match broker.authenticate(
        &creds.username,
        &creds.password,
        peer.ip(),
        AuthProtocol::Amqp,
    ) {
        Ok(u) => u,
        Err(_) => return refuse(r, login_refused(&start_ok.mechanism)).await,
    };
    let client_cap = |name: &str| match start_ok.client_properties.get("capabilities") {
        Some(FieldValue::Table(caps)) => caps.get(name).and_then(|v| v.as_bool()).unwrap_or(false),
        _ => false,
    };
    let cancel_notify = client_cap("consumer_cancel_notify");
    let blocked_notify = client_cap("connection.blocked");

    let cfg = &broker.config;
    r.send(
        0,
        &Method::ConnectionTune(ConnectionTune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat,
        }),
    );
    let tune_ok = match r.frame(FRAME_MIN_SIZE).await {
        Ok(Frame::Method {
            channel: 0,
            method: Method::ConnectionTuneOk(m),
        }) => m,
        Ok(_) => return refuse(r, AmqpError::command_invalid("expected connection.tune-ok")).await,
        Err(Some(e)) => return refuse(r, e).await,
        Err(None) => return None,
    };
    let frame_max = if tune_ok.frame_max == 0 {
        cfg.frame_max
    } else {
        tune_ok.frame_max
    };
    if frame_max > cfg.frame_max {
        let e = AmqpError::not_allowed(format!(
            "frame_max={frame_max} > {} max size",
            cfg.frame_max
        ));
        return refuse(r, e).await;
    }
    if frame_max < FRAME_MIN_SIZE {
        let e =
            AmqpError::not_allowed(format!("frame_max={frame_max} < {FRAME_MIN_SIZE} min size"));
        return refuse(r, e).await;
    }
    let channel_max = if tune_ok.channel_max == 0 {
        cfg.channel_max
    } else {
        tune_ok.channel_max
    };
    if channel_max > cfg.channel_max {
        let e = AmqpError::not_allowed(format!(
            "negotiated channel_max = {channel_max} is higher than the maximum allowed value ({})",
            cfg.channel_max
        ));
        return refuse(r, e).await;
    }
    r.handle.out.set_frame_max(frame_max);
    r.handle.set_heartbeat(tune_ok.heartbeat);

    let open = match r.frame(frame_max).await {
        Ok(Frame::Method {
            channel: 0,
            method: Method::ConnectionOpen(m),
        }) => m,
        Ok(_) => return refuse(r, AmqpError::command_invalid("expected connection.open")).await,
        Err(Some(e)) => return refuse(r, e).await,
        Err(None) => return None,
    };
    let vhost_name = open.virtual_host.to_string_lossy().into_owned();
    let Some(vhost) = broker.vhost(&vhost_name) else {
        return refuse(
            r,
            AmqpError::not_allowed(format!("vhost {vhost_name} not found")),
        )
        .await;
    };
    // RabbitMQ: a user with no permission entry in the vhost may not open it (530).
    if broker.users.permission(&vhost_name, &user.name).is_none() {
        let e = AmqpError::not_allowed(format!(
            "access to vhost '{vhost_name}' refused for user '{}'",
            user.name
        ));
        tracing::warn!(%peer, user = %user.name, vhost = %vhost_name, "vhost access refused");
        return refuse(r, e.on(10, 40)).await;
    }
    {
        let mut info = r.handle.info.lock();
        info.user = user.name.clone();
        info.vhost = vhost_name;
        info.client_properties = start_ok.client_properties;
        info.frame_max = frame_max;
        info.channel_max = channel_max;
        info.heartbeat = tune_ok.heartbeat;
    }
    if let Err(e) = broker.register(r.handle.clone(), &user.name) {
        return refuse(r, e.on(10, 40)).await;
    }
    r.send(0, &Method::ConnectionOpenOk);
    Some(ConnCtx {
        broker: broker.clone(),
        vhost,
        user: user.name.as_str().into(),
        conn: r.handle.clone(),
        route: RouteTargets::default(),
        exclusive_queues: Vec::new(),
        cancel_notify,
        blocked_notify,
        flow_wait: None,
        now: std::time::Instant::now(),
    })
}

fn login_refused(mechanism: &ShortStr) -> AmqpError {
    AmqpError::access_refused(format!(
        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
    ))
}

/// Sends connection.close with the error and waits a moment for close-ok, so the client reads
/// the reason before the socket goes.
async fn refuse(r: &mut Reader, e: AmqpError) -> Option<ConnCtx> {
    tracing::info!(peer = %r.handle.peer, code = e.code, text = %e.text, "connection refused");
    r.send(
        0,
        &Method::ConnectionClose(ConnectionClose {
            reply_code: e.code,
            reply_text: ShortStr::from(e.text.as_str()),
            class_id: e.class_id,
            method_id: e.method_id,
        }),
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(f) = r.frame(0).await {
            if matches!(
                f,
                Frame::Method {
                    channel: 0,
                    method: Method::ConnectionCloseOk
                }
            ) {
                break;
            }
        }
    })
    .await;
    None
}
