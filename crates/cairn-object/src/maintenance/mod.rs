//! Keeping data whole and the drives tidy, beside requests: healing one
//! object ([`heal`]), the heal queue and its worker ([`heal_queue`],
//! [`healer`]), heal jobs over whole sets ([`jobs`]: refills of replaced
//! drives, operator heals, scanner passes), the scanner ([`scanner`]), the
//! janitor and stale-upload cleanup ([`janitor`]), and the drive monitor
//! ([`monitor`]). Everything here but [`heal`] and [`heal_queue`] runs as
//! a [`crate::worker::Worker`].

pub(crate) mod heal;
pub(crate) mod heal_queue;
pub(crate) mod healer;
pub(crate) mod janitor;
pub(crate) mod jobs;
pub(crate) mod monitor;
pub(crate) mod refill;
pub(crate) mod scanner;
pub(crate) mod usage;
