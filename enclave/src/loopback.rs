//! Bringing up the loopback interface inside the enclave.
//!
//! A Nitro Enclave boots with `lo` down, and the init that `nitro-cli build-enclave` puts in
//! every image does not bring it up. The enclave needs it: its KMS transport
//! ([`crate::kms::transport`]) listens on `127.0.0.1:443`. So in production the enclave does what
//! `ip link set lo up` does, over rtnetlink: it asks the kernel for the `lo` link and, if it is
//! down, sets its `IFF_UP` flag. The kernel then gives it `127.0.0.1/8` by itself (should it
//! not, the address is added explicitly). It then checks that 127.0.0.1 is routable. If the
//! image's init (or anything else) already did it, nothing changes, and no privilege is needed.
//!
//! Setting the flag needs `CAP_NET_ADMIN`, which the enclave's process has (it runs as root in
//! the enclave's own network namespace, with no other interface).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The loopback interface's name.
const LOOPBACK: &str = "lo";

/// What [`ensure_up`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopbackStatus {
    /// `lo` was already up.
    AlreadyUp,
    /// `lo` was down and is now up.
    BroughtUp,
}

/// Why the loopback interface could not be brought up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoopbackError {
    /// The rtnetlink socket failed.
    #[error("loopback: rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel refused a request (e.g. `EPERM` without `CAP_NET_ADMIN`).
    #[error("loopback: the kernel refused to {what}: {source}")]
    Refused {
        /// The request.
        what: &'static str,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// The kernel's answer could not be understood.
    #[error("loopback: unexpected rtnetlink answer to {0}")]
    Unexpected(&'static str),
    /// `lo` is up but `127.0.0.1` cannot be used.
    #[error("loopback: lo is up but 127.0.0.1 is not usable: {0}")]
    NoAddress(#[source] std::io::Error),
}

/// Brings `lo` up if it is down, and checks that `127.0.0.1` is then reachable.
pub fn ensure_up() -> Result<LoopbackStatus, LoopbackError> {
    let socket = open()?;
    let mut query = LinkMessage::default();
    query
        .attributes
        .push(LinkAttribute::IfName(LOOPBACK.to_owned()));
    let link = match request(
        &socket,
        RouteNetlinkMessage::GetLink(query),
        0,
        "look up lo",
    )? {
        Some(RouteNetlinkMessage::NewLink(link)) => link,
        _ => return Err(LoopbackError::Unexpected("look up lo")),
    };
    let index = link.header.index;
    let status = if link.header.flags.contains(LinkFlags::Up) {
        LoopbackStatus::AlreadyUp
    } else {
        let mut up = LinkMessage::default();
        up.header.index = index;
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        request(&socket, RouteNetlinkMessage::SetLink(up), 0, "bring lo up")?;
        LoopbackStatus::BroughtUp
    };
    if localhost_reachable().is_err() {
        // Linux gives an `lo` that comes up 127.0.0.1/8 by itself; should a kernel not, add
        // the address (and with it the local route), as `ip addr add 127.0.0.1/8 dev lo` does.
        let mut address = AddressMessage::default();
        address.header.family = AddressFamily::Inet;
        address.header.prefix_len = 8;
        address.header.scope = AddressScope::Host;
        address.header.index = index;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        address.attributes.push(AddressAttribute::Local(localhost));
        address
            .attributes
            .push(AddressAttribute::Address(localhost));
        match request(
            &socket,
            RouteNetlinkMessage::NewAddress(address),
            NLM_F_CREATE | NLM_F_EXCL,
            "add 127.0.0.1/8 to lo",
        ) {
            Ok(_) => {}
            Err(LoopbackError::Refused { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        localhost_reachable().map_err(LoopbackError::NoAddress)?;
    }
    Ok(status)
}

/// Whether there is a route to 127.0.0.1, what the KMS transport needs. (Binding alone succeeds
/// even while `lo` is down; connecting a UDP socket looks the route up and sends nothing.)
fn localhost_reachable() -> std::io::Result<()> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.connect((Ipv4Addr::LOCALHOST, 443))
}

fn open() -> Result<Socket, LoopbackError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(LoopbackError::Socket)?;
    socket.bind_auto().map_err(LoopbackError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(LoopbackError::Socket)?;
    Ok(socket)
}

/// Sends `message` (with `flags` besides `NLM_F_REQUEST | NLM_F_ACK`); returns the kernel's answer message, if
/// it sent one before its acknowledgement.
fn request(
    socket: &Socket,
    message: RouteNetlinkMessage,
    flags: u16,
    what: &'static str,
) -> Result<Option<RouteNetlinkMessage>, LoopbackError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map_err(LoopbackError::Socket)?;

    let mut answer = None;
    // A handful of datagrams at most: the answer, then the acknowledgement.
    for _ in 0..8 {
        let (datagram, _) = socket.recv_from_full().map_err(LoopbackError::Socket)?;
        let mut rest = datagram.as_slice();
        while !rest.is_empty() {
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                .map_err(|_| LoopbackError::Unexpected(what))?;
            // Messages in a datagram are 4-byte aligned.
            let len = usize::try_from(message.header.length)
                .unwrap_or(usize::MAX)
                .saturating_add(3)
                & !3;
            match message.payload {
                NetlinkPayload::Error(error) => {
                    return match error.code {
                        // An acknowledgement: done.
                        None => Ok(answer),
                        Some(code) => Err(LoopbackError::Refused {
                            what,
                            source: std::io::Error::from_raw_os_error(-code.get()),
                        }),
                    };
                }
                NetlinkPayload::InnerMessage(inner) => answer = Some(inner),
                NetlinkPayload::Done(_) => return Ok(answer),
                _ => {}
            }
            rest = match rest.get(len..) {
                Some(next) if len > 0 => next,
                _ => break,
            };
        }
    }
    Err(LoopbackError::Unexpected(what))
}
