//! The enclave's defaults, each one constant here, and the memory budget the server's come from.
//!
//! # Memory budget
//!
//! The enclave lives in the memory the parent's allocator reserves for it
//! ([`ENCLAVE_MEMORY`], `deploy/allocator.yaml`), which also holds the kernel, the in-memory root
//! file system (the ~15 MB binary), the decrypted-key cache (about 0.7 KB a key: ~70 MB at
//! [`CACHE_MAX_ENTRIES`]) and the runtime. The server's buffers get half of it,
//! [`SERVER_MEMORY_BUDGET`], at worst: when a hostile parent sends every frame at the largest
//! size ([`MAX_FRAME`]) and reads its answers slowly. They then hold
//!
//! - per connection ([`PER_CONNECTION`]): `3 × MAX_FRAME + READ_BUFFER + WRITE_BATCH`: the
//!   read buffer and the frame being read (with its decoded form while it is decoded, or while a
//!   `set_credentials` request is handled in place), and the writer's buffer (its 64 KiB batch
//!   plus one frame);
//! - per request in flight across all connections ([`PER_REQUEST`]): `2 × MAX_FRAME`: the
//!   request and its answer, from the end of its frame until the writer takes the answer (the
//!   enclave-wide in-flight permit is released only then);
//! - plus error answers that take no permit (`busy`, undecodable bodies): short sentences (a
//!   decoding error's message is cut at `codec::MAX_ERROR_LEN`, 256 bytes, whatever it quotes),
//!   at most [`MAX_IN_FLIGHT`] queued per connection, a few hundred KiB in all.
//!
//! A decoded request is counted as one more frame. What decoding could blow up beyond its wire
//! size is bounded while decoding: a batch holds at most `MAX_BATCH` transactions (an empty CBOR
//! string is one byte on the wire and 24 in memory).
//!
//! With the defaults: [`MAX_CONNECTIONS`] (16) × 6 MiB 80 KiB = 97.25 MiB, leaving
//! 414.75 MiB, that is [`MAX_IN_FLIGHT_TOTAL`] = ⌊414.75 / 4⌋ = 103 requests of 4 MiB
//! (412 MiB): 509.25 MiB of 512 at worst. [`MAX_IN_FLIGHT`], per connection, is half of the
//! total, so that one connection cannot take all of it. A deployment with more memory raises
//! the counts with the options, by the same arithmetic ([`worst_case`]).
//!
//! Signing requests and answers are about a kilobyte, so in practice 103 requests in flight
//! hold about 200 KiB; the bound is what a hostile parent can make the enclave hold, and keeping
//! it inside the allocation means such a parent can slow the enclave but not get it killed for
//! want of memory. `MAX_FRAME` (2 MiB) is twice the proxy's default body limit (1 MiB), so every
//! request the proxy accepts by default fits in a frame.

use std::time::Duration;

use nitro_signer_common::protocol::frame::{self, READ_BUFFER, WRITE_BATCH};

const MIB: usize = 1024 * 1024;

/// The enclave's memory (`memory_mib` in `deploy/allocator.yaml`).
pub const ENCLAVE_MEMORY: usize = 1024 * MIB;

/// What the server's buffers may hold at worst: half of [`ENCLAVE_MEMORY`].
pub const SERVER_MEMORY_BUDGET: usize = ENCLAVE_MEMORY / 2;

/// Largest frame the enclave reads or writes: the protocol's default, which the proxy's client
/// uses too.
pub const MAX_FRAME: usize = frame::MAX_FRAME_LEN;

/// What one connection holds at worst, besides its requests in flight.
pub const PER_CONNECTION: usize = 3 * MAX_FRAME + READ_BUFFER + WRITE_BATCH;

/// What one request in flight holds at worst: itself and its answer.
pub const PER_REQUEST: usize = 2 * MAX_FRAME;

/// Concurrent connections from the parent. The proxy keeps 4; the rest leaves room for a second
/// proxy during a restart and for tools.
pub const MAX_CONNECTIONS: usize = 16;

/// Requests in flight across all connections: what [`SERVER_MEMORY_BUDGET`] leaves after
/// [`MAX_CONNECTIONS`] connections, in [`PER_REQUEST`] shares.
pub const MAX_IN_FLIGHT_TOTAL: usize =
    (SERVER_MEMORY_BUDGET - MAX_CONNECTIONS * PER_CONNECTION) / PER_REQUEST;

/// Requests in flight on one connection: half of [`MAX_IN_FLIGHT_TOTAL`].
pub const MAX_IN_FLIGHT: usize = MAX_IN_FLIGHT_TOTAL / 2;

/// Time for a started frame to arrive, an answer to be written, and the hello to come.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay idle (no request frame read and no request in flight) before
/// the server closes it, so that peers that connect and say nothing more cannot hold the
/// [`MAX_CONNECTIONS`] slots. The proxy's pool sends a `status` request on each idle connection
/// every 15 s (`EnclaveConfig::keepalive_interval` in the client), well inside it. When every
/// slot is taken, a newcomer also makes room by closing the connection idle the longest,
/// whatever its idle time (see `server`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// On shutdown, time for the requests in flight to finish and their answers to be written.
/// Longer than [`KMS_OPERATION_TIMEOUT`], so that a request waiting for KMS gets its answer.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Most KMS calls in flight at once; further ones wait up to [`KMS_QUEUE_WAIT`], then get
/// `busy`. Bounds what a flood of unknown blobs can cost (KMS throttles at its own limits too).
pub const MAX_KMS_IN_FLIGHT: usize = 32;

/// Longest wait for a KMS call slot.
pub const KMS_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Most decrypted keys cached.
pub const CACHE_MAX_ENTRIES: usize = 100_000;

/// How long a decrypted key stays cached after KMS returned it. Revoking a key's access at KMS
/// (key policy, disabling the key) takes effect for a cached key only when its entry expires.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);

/// Time limit of one KMS attempt (the SDK retries failed attempts with backoff, three attempts
/// in all).
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Time limit of a whole KMS operation, retries and backoff included. Shorter than the parent
/// proxy's default request timeout (10 s), so that a slow KMS is reported as `kms_unavailable`
/// by the enclave rather than as the proxy's `enclave_timeout`, which would blame the enclave.
pub const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// What the server's buffers hold at worst with `max_connections`, `max_in_flight_total` and
/// `max_frame` (see the module documentation); saturating.
pub const fn worst_case(
    max_connections: usize,
    max_in_flight_total: usize,
    max_frame: usize,
) -> usize {
    let per_connection = max_frame
        .saturating_mul(3)
        .saturating_add(READ_BUFFER + WRITE_BATCH);
    max_connections
        .saturating_mul(per_connection)
        .saturating_add(max_in_flight_total.saturating_mul(max_frame.saturating_mul(2)))
}

// The defaults fit the budget, and leave room for requests.
const _: () =
    assert!(worst_case(MAX_CONNECTIONS, MAX_IN_FLIGHT_TOTAL, MAX_FRAME) <= SERVER_MEMORY_BUDGET);
const _: () = assert!(MAX_IN_FLIGHT >= 32);
const _: () = assert!(DRAIN_TIMEOUT.as_millis() > KMS_OPERATION_TIMEOUT.as_millis());

/// The budget's arithmetic with the defaults, for `--help`.
pub fn budget_help() -> String {
    let mib = |bytes: usize| bytes as f64 / MIB as f64;
    format!(
        "Memory: the defaults keep what a hostile parent can make the server hold within {budget} \
         MiB, half of the enclave's {enclave} MiB (deploy/allocator.yaml); the other half holds \
         the kernel, the in-memory root file system, the key cache (about 0.7 KB a key) and the \
         runtime. At worst, with frames of at most {frame} MiB, each connection holds 3 frames \
         plus buffers ({per_connection:.2} MiB) and each request in flight 2 frames \
         ({per_request} MiB): {connections} connections × {per_connection:.2} MiB + {total} requests × \
         {per_request} MiB = {worst:.2} MiB. With more enclave memory, raise \
         --max-connections and --max-in-flight-total by the same arithmetic.",
        budget = SERVER_MEMORY_BUDGET / MIB,
        enclave = ENCLAVE_MEMORY / MIB,
        per_connection = mib(PER_CONNECTION),
        frame = MAX_FRAME / MIB,
        per_request = PER_REQUEST / MIB,
        connections = MAX_CONNECTIONS,
        total = MAX_IN_FLIGHT_TOTAL,
        worst = mib(worst_case(MAX_CONNECTIONS, MAX_IN_FLIGHT_TOTAL, MAX_FRAME)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_arithmetic_holds() {
        assert_eq!(PER_CONNECTION, 6 * MIB + 80 * 1024);
        assert_eq!(MAX_IN_FLIGHT_TOTAL, 103);
        assert_eq!(MAX_IN_FLIGHT, 51);
        let worst = worst_case(MAX_CONNECTIONS, MAX_IN_FLIGHT_TOTAL, MAX_FRAME);
        assert_eq!(worst, 509 * MIB + 256 * 1024);
        assert!(
            budget_help().contains("16 connections × 6.08 MiB + 103 requests × 4 MiB = 509.25 MiB")
        );
    }
}
