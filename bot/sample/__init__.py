"""The sample project: Larkspur Kitchen's handbook, tickets and questions, walked rung by rung."""
