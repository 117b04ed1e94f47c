//! The system tests' kit, compiled once and linked by every test binary of `chat/tests/`:
//! the real `chat` binary on free ports (`chat dev`, or with the `cluster` feature the roles
//! on Kafka + Cassandra), and thin HTTP and WebSocket clients that speak to it over real
//! sockets.
//!
//! `server` starts and addresses the processes, `lifecycle` kills and restarts them,
//! `cluster` names each test's share of the cluster, `http` and `socket` are the clients,
//! `storm` is the keyed-send storm of the fault tests.

mod cluster;
mod http;
mod lifecycle;
pub mod receiver;
mod server;
mod socket;
pub mod storm;

pub use cluster::{ClusterNames, analytics, on_cluster, tool};
pub use server::{Role, Server, Shape};
pub use socket::{Client, Seen, Socket, native_client, seed_client};

/// The token secret every test server is started with.
pub const SECRET: &str = "system-test-secret-that-is-at-least-32-bytes";
/// An origin every test server allows for cookie-authenticated sockets.
pub const ORIGIN: &str = "http://chat.test";

/// A small seeded generator (xorshift*), so a failing random test can be run again with
/// the seed it printed (`CHAT_TEST_SEED`).
#[derive(Debug)]
pub struct Dice(pub u64);

impl Dice {
    /// The seed from `CHAT_TEST_SEED`, or `default`.
    pub fn seeded(default: u64) -> Self {
        let seed = std::env::var("CHAT_TEST_SEED").ok().and_then(|s| s.parse().ok());
        Self(seed.unwrap_or(default).max(1))
    }

    pub fn roll(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.roll() % n as u64) as usize
    }
}

pub fn token(user: &str) -> String {
    auth::mint_hs256(SECRET.as_bytes(), user, Some(&user.to_uppercase()), false, 3600)
        .expect("a token for a valid user id")
}

pub fn service_token() -> String {
    auth::mint_hs256(SECRET.as_bytes(), "jobs", Some("Jobs"), true, 3600).expect("a service token")
}
