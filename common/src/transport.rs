//! One address syntax for every binary, and the sockets behind it.
//!
//! - `vsock://CID:PORT`: production, between the parent instance and the enclave.
//! - `tcp://HOST:PORT`: simulated mode, and the parent's own listeners.
//! - `unix:///PATH`: simulated mode on one machine.
//!
//! Only the transport differs between production and simulated mode; everything above a
//! [`Stream`] is the same code.

use std::{
    fmt, io,
    path::PathBuf,
    pin::Pin,
    str::FromStr,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A vsock context id and port.
    Vsock {
        /// Context id: 3 is the parent instance; an enclave's is chosen at `nitro-cli run-enclave`.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A TCP `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// An address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address {input:?}: {reason} (expected vsock://CID:PORT, tcp://HOST:PORT or unix:///PATH)"
)]
pub struct AddressError {
    input: String,
    reason: &'static str,
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| AddressError {
            input: input.to_owned(),
            reason,
        };
        let (scheme, rest) = input.split_once("://").ok_or(error("no scheme"))?;
        match scheme {
            "vsock" => {
                let (cid, port) = rest.split_once(':').ok_or(error("no port"))?;
                Ok(Self::Vsock {
                    cid: cid.parse().map_err(|_| error("CID is not a number"))?,
                    port: port.parse().map_err(|_| error("port is not a number"))?,
                })
            }
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or(error("no port"))?;
                if host.is_empty() {
                    return Err(error("no host"));
                }
                port.parse::<u16>()
                    .map_err(|_| error("port is not a number from 0 to 65535"))?;
                Ok(Self::Tcp(rest.to_owned()))
            }
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(error("the path must be absolute (unix:///PATH)"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            _ => Err(error("unknown scheme")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Self::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// A bound listener of any transport.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket.
    Unix(UnixListener),
    /// vsock.
    Vsock(VsockListener),
}

impl Listener {
    /// Binds `address`. A Unix socket path left over by a previous run is replaced.
    pub async fn bind(address: &Address) -> io::Result<Self> {
        match address {
            Address::Tcp(host_port) => Ok(Self::Tcp(TcpListener::bind(host_port).await?)),
            Address::Unix(path) => {
                if UnixStream::connect(path).await.is_err() {
                    match std::fs::remove_file(path) {
                        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                        _ => {}
                    }
                }
                Ok(Self::Unix(UnixListener::bind(path)?))
            }
            Address::Vsock { cid, port } => Ok(Self::Vsock(VsockListener::bind(VsockAddr::new(
                *cid, *port,
            ))?)),
        }
    }

    /// The address actually bound (with the port the system chose for `tcp://…:0`).
    pub fn local_address(&self) -> io::Result<Address> {
        Ok(match self {
            Self::Tcp(listener) => Address::Tcp(listener.local_addr()?.to_string()),
            Self::Unix(listener) => Address::Unix(
                listener
                    .local_addr()?
                    .as_pathname()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            ),
            Self::Vsock(listener) => {
                let address = listener.local_addr()?;
                Address::Vsock {
                    cid: address.cid(),
                    port: address.port(),
                }
            }
        })
    }

    /// Accepts one connection; the string describes the peer for logs.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
            Self::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), "unix".to_owned()))
            }
            Self::Vsock(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok((Stream::Vsock(stream), peer.to_string()))
            }
        }
    }
}

/// Connects to `address`.
pub async fn connect(address: &Address) -> io::Result<Stream> {
    match address {
        Address::Tcp(host_port) => {
            let stream = TcpStream::connect(host_port).await?;
            stream.set_nodelay(true)?;
            Ok(Stream::Tcp(stream))
        }
        Address::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        Address::Vsock { cid, port } => Ok(Stream::Vsock(
            VsockStream::connect(VsockAddr::new(*cid, *port)).await?,
        )),
    }
}

/// A connected stream of any transport.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
    /// vsock.
    Vsock(VsockStream),
}

macro_rules! delegate {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($inner) => $call,
            Stream::Unix($inner) => $call,
            Stream::Vsock($inner) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, inner => Pin::new(inner).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, inner => Pin::new(inner).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, inner => Pin::new(inner).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, inner => Pin::new(inner).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for text in [
            "vsock://16:5000",
            "vsock://3:8000",
            "tcp://127.0.0.1:5000",
            "tcp://[::1]:80",
            "tcp://localhost:0",
            "unix:///run/nitro-signer.sock",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "vsock://16:5000".parse::<Address>().unwrap(),
            Address::Vsock {
                cid: 16,
                port: 5000
            }
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, reason) in [
            ("127.0.0.1:5000", "no scheme"),
            ("http://x:1", "unknown scheme"),
            ("vsock://x:1", "CID is not a number"),
            ("vsock://3", "no port"),
            ("tcp://host:99999", "port is not a number"),
            ("tcp://:80", "no host"),
            ("unix://relative.sock", "absolute"),
        ] {
            let error = text.parse::<Address>().unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[tokio::test]
    async fn tcp_and_unix_connect_to_their_listeners() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let unix = Address::Unix(dir.path().join("s.sock"));
        for address in [Address::Tcp("127.0.0.1:0".into()), unix] {
            let listener = Listener::bind(&address).await.unwrap();
            let bound = listener.local_address().unwrap();
            let client = tokio::spawn(async move {
                let mut stream = connect(&bound).await.unwrap();
                stream.write_all(b"ping").await.unwrap();
            });
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            client.await.unwrap();
        }
        // A stale socket file from a stopped process is replaced.
        let path = dir.path().join("s.sock");
        assert!(path.exists());
        Listener::bind(&Address::Unix(path)).await.unwrap();
    }
}
