// Built-in Azure role definition IDs used by holdfast. They are the same GUIDs in every tenant and cloud.
// Keep every role GUID here so that one list can be reviewed (and is checked by infra/infratest).

@export()
@description('Built-in role definition GUIDs, by role name.')
var roleIds = {
  // Receive, peek, renew locks, defer, complete, abandon, dead-letter.
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  // Send: the drain resubmits deferred messages as new messages.
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  // Host storage (AzureWebJobsStorage: timer schedule status and singleton locks) and the deployment container.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // The deferral ledger table, and the tables the Functions host keeps in AzureWebJobsStorage.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Entra ID-authenticated telemetry to Application Insights (local auth is disabled).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // ContainerAppsJob: the app identity pulls the job's image from the registry.
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  // ContainerAppsJob: the scaler identity reads the entity's message counts. KEDA's azure-servicebus scaler
  // reads them through the entity-management API, which needs Manage rights (KEDA docs); with Entra ID that
  // is Data Owner, assigned on the one entity only and to an identity the handler does not use.
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
}
