//! Documents on a case: the records, reports and letters of a second
//! opinion. Owns their rows, the encryption of their bytes (a key per file,
//! wrapped by a master key: `keys`, `cipher`), where the bytes are kept
//! (`storage`: a local directory or an S3-compatible service), which kinds
//! of file are accepted (`sniff`), and the operations people and jobs run
//! on them (`store`), under the case's access rules and audited.

pub mod cipher;
pub mod jobs;
pub mod keys;
pub mod sniff;
pub mod storage;
pub mod store;
