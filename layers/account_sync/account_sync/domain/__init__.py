"""The rules of SPEC.md, free of AWS and Salesforce: versions, field diffs, the activity threshold."""
