use cache_runtime::{invalidates, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[invalidates(tags = ["point.{x}"])]
    async fn move_point(&self, (x, y): (u32, u32)) -> Result<(), String> {
        let _ = (x, y);
        Ok(())
    }
}

fn main() {}
