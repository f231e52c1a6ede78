//! Every alert as a server-sent event, from a cursor in the alert log.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::Body;
use crate::observe::telemetry::Telemetry;

/// A response body fed by a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Streams every alert after `cursor` as server-sent events (`id:` is the alert's sequence
/// number, `data:` its JSON line, as in the alert file), then `event: end` when the run is over.
pub(super) fn sse(telemetry: Arc<Telemetry>, mut cursor: u64) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let mut changed = telemetry.alerts.subscribe();
    tokio::spawn(async move {
        if tx.send(Bytes::from_static(b"retry: 1000\n: sensorflow alerts\n\n")).await.is_err() {
            return;
        }
        loop {
            // Mark the current version seen before reading, so no append is missed.
            changed.borrow_and_update();
            let finished = telemetry.is_finished();
            let (entries, gap) = telemetry.alerts.after(cursor, 512);
            if gap {
                let msg = format!("event: gap\ndata: {{\"after\":{cursor}}}\n\n");
                if tx.send(Bytes::from(msg)).await.is_err() {
                    return;
                }
            }
            if !entries.is_empty() {
                let mut chunk = String::new();
                for (seq, line) in &entries {
                    chunk.push_str(&format!("id: {seq}\ndata: {line}\n\n"));
                    cursor = *seq;
                }
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
                continue;
            }
            if finished {
                let _ = tx.send(Bytes::from_static(b"event: end\ndata: {}\n\n")).await;
                return;
            }
            match tokio::time::timeout(Duration::from_secs(15), changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
