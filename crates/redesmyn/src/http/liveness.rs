//! Client liveness: whether the peer of a request's connection is still
//! there, so the batcher can drop the rows of a client that left.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use actix_web::HttpRequest;

use crate::batch::Liveness;

/// A duplicate of a connection's socket, to ask whether the peer closed it.
/// Owning the duplicate keeps the descriptor from being reused while a
/// request of the connection waits.
#[derive(Clone)]
struct ClientSocket(Arc<OwnedFd>);

/// `HttpServer::on_connect` hook: remembers each TCP connection's socket.
pub fn remember_socket(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
            data.insert(ClientSocket(Arc::new(fd)));
        }
    }
}

/// The liveness probe of `req`'s connection (none in in-process tests).
pub fn of(req: &HttpRequest) -> Option<Arc<dyn Liveness>> {
    req.conn_data::<ClientSocket>().map(|s| Arc::new(s.clone()) as Arc<dyn Liveness>)
}

impl Liveness for ClientSocket {
    /// A zero-byte peek means the peer closed its side; pending bytes (a
    /// pipelined request) or nothing to read mean it is still there.
    fn gone(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: the descriptor is owned by `self` and open for the call;
        // the buffer is one valid, writable byte; MSG_DONTWAIT never blocks.
        let n =
            unsafe { libc::recv(self.0.as_raw_fd(), (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        if n == 0 {
            return true;
        }
        n < 0
            && matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ECONNRESET | libc::EPIPE | libc::ENOTCONN)
            )
    }
}
