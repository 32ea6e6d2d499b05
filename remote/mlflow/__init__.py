"""MLflow on the box: what it should be (spec), where its data lives (store),
installing it, looking at it and backing it up."""
