"""Evidence an auditor accepts: JUnit properties now; bundles and reports build on it."""
