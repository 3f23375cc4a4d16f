//! Netcat: a probe for tests.
//! It tries to connect over TCP, say hello and read a reply.

wit_bindgen::generate!({
    world: "airlock-guest:netcat/netcat",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::io::{Read, Write};
use std::net::TcpStream;

/// The tool: one TCP round trip.
struct Netcat;

impl Guest for Netcat {
    fn connect(addr: String) -> Result<String, String> {
        let mut stream =
            TcpStream::connect(addr.as_str()).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .write_all(b"hello")
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = [0u8; 4096];
        let n = stream.read(&mut reply).map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }
}

export!(Netcat);
