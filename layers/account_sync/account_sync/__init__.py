"""Account Sync: keeps the account fields of a DynamoDB contact store in step with Salesforce Accounts."""
