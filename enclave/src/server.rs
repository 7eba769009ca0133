//! The enclave's server: connections from the parent, many requests in flight on each.
//!
//! Every peer is untrusted. A connection must say hello within a time limit; frames are bounded
//! before allocation and must complete once started; a frame that does not decode gets an error
//! answer (or, when even its request id is unreadable, a closed connection); a peer that stops
//! reading its answers is disconnected. None of this affects other connections, and nothing a
//! peer sends can panic the server: requests are handled by [`Enclave::handle`], which turns every
//! failure into an error answer.

use std::{future::Future, sync::Arc, time::Duration};

use nitro_signer_common::{
    protocol::{
        ErrorBody, ErrorCode, Hello, HelloReply, PROTOCOL_VERSION, Request, RequestBody, Response,
        ResponseBody,
        codec::{self, CodecError},
        frame::{self, FrameError},
    },
    transport::{Listener, Stream},
};
use serde::Deserialize;
use tokio::{
    io::{AsyncWrite, WriteHalf},
    sync::{Semaphore, mpsc},
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::service::Enclave;

/// Limits that keep one peer from exhausting the enclave.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Concurrent connections; more are closed on accept.
    pub max_connections: usize,
    /// Requests in flight per connection; further frames are not read until one finishes.
    pub max_in_flight: usize,
    /// Largest frame.
    pub max_frame: usize,
    /// Time for a started frame to arrive completely, for an answer to be written, and for the
    /// hello after connecting.
    pub io_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_in_flight: 512,
            max_frame: frame::MAX_FRAME_LEN,
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `listener` until `shutdown` completes.
pub async fn serve(
    listener: Listener,
    enclave: Arc<Enclave>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let sweeper = tokio::spawn({
        let enclave = Arc::clone(&enclave);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                enclave.evict_expired();
            }
        }
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            warn!(%peer, limit = limits.max_connections, "connection refused: at the connection limit");
            continue;
        };
        let enclave = Arc::clone(&enclave);
        tokio::spawn(
            async move {
                let _permit = permit;
                debug!("connected");
                let reason = connection(stream, enclave, limits).await;
                debug!(%reason, "disconnected");
            }
            .instrument(info_span!("connection", %peer)),
        );
    }
    sweeper.abort();
    info!("server stopped");
}

/// Serves one connection; returns why it ended.
async fn connection(stream: Stream, enclave: Arc<Enclave>, limits: ServerLimits) -> String {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = frame::buffered(reader);

    let hello = tokio::time::timeout(
        limits.io_timeout,
        frame::read_frame(&mut reader, limits.max_frame, limits.io_timeout),
    )
    .await;
    let hello = match hello {
        Err(_) => return "no hello in time".into(),
        Ok(Err(error)) => return error.to_string(),
        Ok(Ok(bytes)) => bytes,
    };
    let reply = match codec::decode::<Hello>(&hello) {
        Ok(hello) if hello.versions.contains(&PROTOCOL_VERSION) => {
            // The name is the peer's: log a bounded, printable prefix of it.
            let client: String = hello
                .client
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            info!(%client, version = PROTOCOL_VERSION, "hello");
            HelloReply::Welcome(enclave.welcome(PROTOCOL_VERSION))
        }
        Ok(hello) => HelloReply::Refused(ErrorBody::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "the enclave speaks protocol version {PROTOCOL_VERSION}; the client offered {:?}",
                hello.versions
            ),
        )),
        Err(error) => HelloReply::Refused(ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("expected a hello: {error}"),
        )),
    };
    let welcomed = matches!(reply, HelloReply::Welcome(_));
    if let Err(error) = write(&mut writer, &reply, limits).await {
        return error;
    }
    if !welcomed {
        return "hello refused".into();
    }

    // Answers go through one writer task, in the order they finish.
    let (answers, mut to_write) = mpsc::channel::<Vec<u8>>(limits.max_in_flight);
    let writer_task = tokio::spawn(async move {
        match frame::write_queued(
            &mut writer,
            &mut to_write,
            limits.max_frame,
            limits.io_timeout,
        )
        .await
        {
            Ok(()) => "closed".to_owned(),
            Err(FrameError::NotRead(_)) => "the peer does not read its answers".to_owned(),
            Err(error) => error.to_string(),
        }
    });
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));

    let reason = loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break "closing".to_owned();
        };
        if writer_task.is_finished() {
            break "writer stopped".to_owned();
        }
        let bytes = match frame::read_frame(&mut reader, limits.max_frame, limits.io_timeout).await
        {
            Ok(bytes) => bytes,
            Err(FrameError::Closed) => break "closed by the peer".to_owned(),
            Err(error) => break error.to_string(),
        };
        let request = match codec::decode::<Request>(&bytes) {
            Ok(request) => request,
            Err(error) => match request_id(&bytes) {
                // The frame is a request whose body does not decode: answer, keep serving.
                Some(id) => {
                    let answer = encode_response(Response {
                        id,
                        body: ResponseBody::Error(ErrorBody::new(
                            ErrorCode::InvalidRequest,
                            error.to_string(),
                        )),
                    });
                    if answers.send(answer).await.is_err() {
                        break "writer stopped".to_owned();
                    }
                    continue;
                }
                None => break format!("undecodable frame: {error}"),
            },
        };
        if matches!(request.body, RequestBody::SetCredentials(_)) {
            // Handled before the next frame is read, so that every later request on this
            // connection sees the new credentials.
            let body = enclave.handle(request.body).await;
            if answers
                .send(encode_response(Response {
                    id: request.id,
                    body,
                }))
                .await
                .is_err()
            {
                break "writer stopped".to_owned();
            }
            drop(permit);
            continue;
        }
        let enclave = Arc::clone(&enclave);
        let answers = answers.clone();
        let kind = kind(&request.body);
        tokio::spawn(
            async move {
                let body = enclave.handle(request.body).await;
                if let ResponseBody::Error(error) = &body {
                    debug!(code = error.code.as_str(), "refused");
                }
                let mut answer = encode_response(Response {
                    id: request.id,
                    body,
                });
                if answer.len() > limits.max_frame {
                    // Sending it would close the connection for every request on it.
                    answer = encode_response(Response {
                        id: request.id,
                        body: ResponseBody::Error(ErrorBody::new(
                            ErrorCode::InvalidRequest,
                            format!(
                                "the answer ({} bytes) exceeds the {}-byte frame limit; send \
                                 fewer or smaller payloads per request",
                                answer.len(),
                                limits.max_frame
                            ),
                        )),
                    });
                }
                let _ = answers.send(answer).await;
                drop(permit);
            }
            .instrument(info_span!("request", id = request.id, kind)),
        );
    };
    drop(answers);
    // In-flight requests finish and their answers are written, unless the peer is gone.
    let _ = writer_task.await;
    reason
}

async fn write<T: serde::Serialize, W: AsyncWrite>(
    writer: &mut WriteHalf<W>,
    message: &T,
    limits: ServerLimits,
) -> Result<(), String> {
    let bytes = codec::encode(message).map_err(|e| e.to_string())?;
    tokio::time::timeout(
        limits.io_timeout,
        frame::write_frame(writer, &bytes, limits.max_frame),
    )
    .await
    .map_err(|_| "the peer does not read".to_owned())?
    .map_err(|e| e.to_string())
}

fn encode_response(response: Response) -> Vec<u8> {
    let id = response.id;
    codec::encode(&response).unwrap_or_else(|error: CodecError| {
        // Our own types always encode; if one ever does not, say so instead of going silent.
        codec::encode(&Response {
            id,
            body: ResponseBody::Error(ErrorBody::new(ErrorCode::Internal, error.to_string())),
        })
        .unwrap_or_default()
    })
}

/// The id of a frame that is a request map but whose body did not decode.
fn request_id(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: u64,
        #[serde(rename = "body")]
        _body: serde::de::IgnoredAny,
    }
    codec::decode::<IdOnly>(bytes)
        .ok()
        .map(|request| request.id)
}

fn kind(body: &RequestBody) -> &'static str {
    match body {
        RequestBody::GenerateKey(_) => "generate_key",
        RequestBody::Address(_) => "address",
        RequestBody::Sign(_) => "sign",
        RequestBody::SignBatch(_) => "sign_batch",
        RequestBody::Attest(_) => "attest",
        RequestBody::Status => "status",
        RequestBody::SetCredentials(_) => "set_credentials",
    }
}
