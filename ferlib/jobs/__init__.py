"""Work over finished runs: reproduce a paper's table in one call, ensemble runs, paper-vs-ours tables."""
