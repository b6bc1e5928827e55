//! `cairn cluster add-node | remove-node`.

use serde_json::json;

use crate::args::{ClusterArgs, ClusterCommand};
use crate::discovery::connect;

/// Runs a membership change and prints the members after it.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = connect(&args.client).await?;
    let members = match args.command {
        ClusterCommand::AddNode { id, addr } => client.add_node(id, &addr).await?,
        ClusterCommand::RemoveNode { id } => client.remove_node(id).await?,
    };
    if args.client.json {
        let members: Vec<_> = members
            .iter()
            .map(|(id, addr, role)| json!({"id": id, "addr": addr, "role": role}))
            .collect();
        println!("{}", json!({ "members": members }));
    } else {
        for (id, addr, role) in members {
            println!("{id}\t{addr}\t{role}");
        }
    }
    Ok(())
}
