//! Failpoints for the fault tests: places where a test build can be told to stop and wait, so
//! a test can kill the process or stop the server at that moment. Compiled in only with the
//! `failpoints` feature (`scripts/test` enables it); a release build never reads them.

use std::time::Duration;

/// How long to hold the open COPY after its first chunk: `COSTAGG_FAILPOINT_COPY_PAUSE_MS` in
/// a build with the `failpoints` feature; never in any other build.
pub fn copy_pause() -> Option<Duration> {
    #[cfg(feature = "failpoints")]
    {
        std::env::var("COSTAGG_FAILPOINT_COPY_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        None
    }
}
