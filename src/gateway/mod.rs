//! A client of OpenClaw's gateway protocol (WebSocket, version 4): connect
//! with the shared token and an Ed25519 device identity, call methods, wait
//! for events, every step bounded. (Being written.)
