//! The results site, run comparison and regression gate, all read from the
//! run records under `results/` through `rtbench-record`'s types.

pub mod chart;
pub mod compare;
pub mod figures;
pub mod load;
pub mod micro;
pub mod original;
pub mod paths;
pub mod regress;
pub mod render;
pub mod rows;
pub mod table;
