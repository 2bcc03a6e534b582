//! Integration tests, one binary (ripgrep style). Each module talks to real servers over real
//! TLS on loopback, on ephemeral ports.
