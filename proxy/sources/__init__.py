"""Where availability comes from: the policy-neutral chain in front of Graph, built in one place."""
