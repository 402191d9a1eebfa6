//! 0x8004 server time answer (JT/T 808-2019 §8.5; 0x0004 asks, with an empty body): the UTC time
//! as BCD[6].

use crate::codec::wire::BcdTime;

flat_body! {
    /// The body of 0x8004.
    pub struct ServerTime {
        /// UTC time, YYMMDDhhmmss.
        time: BcdTime,
    }
}
