//! `sqlx::migrate!` embeds the files of `migrations/` when this crate compiles, but cargo notices
//! only changes to the files it already embedded: without this line a new migration would be
//! left out of a build that is not otherwise rebuilt.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
