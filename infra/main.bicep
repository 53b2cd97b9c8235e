// holdfast: a Go custom handler on Azure Functions that receives from Service Bus with lock renewal, defers
// with a ledger in Table Storage and drains deferred messages over HTTP.
//
// Deploys into an existing resource group (az deployment group create, or azd with a resource group):
//   user-assigned identity · Service Bus namespace + queue (or topic + subscription) · storage account
//   (host storage, deployment container, ledger table) · Log Analytics + Application Insights · function app
//   on Flex Consumption (default) or legacy Consumption (Y1), or (hostingPlan=ContainerAppsJob) a container
//   registry, a Container Apps environment and an event-driven job that KEDA scales on the entity, with a
//   second identity for the scaler.
// Everything authenticates with the identity; the template creates no keys and outputs no secrets.
// Parameter choices are explained in infra/README.md.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------
// General

@description('Azure region for every resource.')
@minLength(1)
@maxLength(64)
param location string = resourceGroup().location

@description('azd environment name, recorded in the azd-env-name tag. Empty outside azd.')
@maxLength(64)
param environmentName string = ''

@description('Prefix of every resource name, 3-11 characters. It is lower-cased and everything but letters and digits is dropped, so that it fits every naming rule (storage accounts take only lower-case letters and digits).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'holdfast'

// ---------------------------------------------------------------------------------------------------------
// Service Bus

@description('Service Bus tier. Standard is enough; Basic lacks duplicate detection and topics.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Receive from a queue (default) or from a subscription of a topic.')
@allowed([
  'queue'
  'topic'
])
param entityKind string = 'queue'

@description('Queue name (entityKind queue).')
@minLength(1)
@maxLength(260)
param queueName string = 'holdfast'

@description('Topic name (entityKind topic).')
@minLength(1)
@maxLength(260)
param topicName string = 'holdfast'

@description('Subscription name (entityKind topic).')
@minLength(1)
@maxLength(50)
param subscriptionName string = 'holdfast'

@description('Peek-lock duration in seconds (service maximum 300). The handler renews the lock while a message is processed.')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int = 60

@description('Deliveries before the broker dead-letters a message. Abandon, lock loss and defer count as deliveries.')
@minValue(10)
@maxValue(100)
param maxDeliveryCount int = 10

@description('Message time to live in hours (default 14 days). Bounds how long a deferred message can wait for a drain.')
@minValue(1)
@maxValue(8760)
param messageTimeToLiveHours int = 336

@description('Dead-letter messages when they expire instead of dropping them.')
param deadLetteringOnMessageExpiration bool = true

@description('Delete the entity after this idle time; the default means never.')
@allowed([
  'P10675199DT2H48M5.4775807S'
  'P30D'
  'P90D'
  'P365D'
])
param autoDeleteOnIdle string = 'P10675199DT2H48M5.4775807S'

@description('Duplicate detection: a resubmitted copy whose send is retried is dropped. Fixed at entity creation.')
param requiresDuplicateDetection bool = true

@description('Duplicate detection window in minutes (default 1 day); must cover the drain retry horizon.')
@minValue(10)
@maxValue(10080)
param duplicateDetectionWindowMinutes int = 1440

@description('Server-side batched store operations.')
param enableBatchedOperations bool = true

@description('Session-enabled queue or subscription (HOLDFAST_REQUIRES_SESSION): runs accept sessions and process each session\'s messages in order, one at a time. Fixed once the entity exists.')
param requiresSession bool = false

@description('Maximum entity size in megabytes (deferred messages count toward it).')
@allowed([
  1024
  2048
  3072
  4096
  5120
])
param maxSizeInMegabytes int = 1024

// ---------------------------------------------------------------------------------------------------------
// Storage and monitoring

@description('Deferral ledger table (HOLDFAST_DEFERRAL_TABLE): a letter then 2-62 letters or digits.')
@minLength(3)
@maxLength(63)
param deferralTableName string = 'holdfastdeferrals'

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------------------
// Function app

@description('Hosting plan: FlexConsumption (default), the legacy Linux Consumption plan (retires 30 Sep 2028), or ContainerAppsJob (an event-driven Container Apps job running handler run-once, scaled out by KEDA).')
@allowed([
  'FlexConsumption'
  'Consumption'
  'ContainerAppsJob'
])
param hostingPlan string = 'FlexConsumption'

@description('Host functionTimeout in minutes; a ProcessQueue run lasts this minus 30 s. Clamped to 10 on Consumption.')
@minValue(1)
@maxValue(240)
param functionTimeoutMinutes int = 10

@description('HOLDFAST_BATCH_SIZE: messages requested per receive call.')
@minValue(1)
@maxValue(5000)
param batchSize int = 20

@description('HOLDFAST_CONCURRENCY: messages processed at once by one run.')
@minValue(1)
@maxValue(1000)
param concurrency int = 8

@description('HOLDFAST_MAX_SESSIONS (requiresSession only): sessions one run holds at once, each processing one message at a time; 0 means the concurrency.')
@minValue(0)
@maxValue(1000)
param maxSessions int = 0

@description('HOLDFAST_PROCESSOR: the built-in message processor. Only processors this version of the handler has are allowed.')
@allowed([
  'demo'
  'webhook'
])
param processor string = 'demo'

@description('HOLDFAST_WEBHOOK_URL for the webhook processor; leave empty otherwise.')
@secure()
@maxLength(2048)
param webhookUrl string = ''

@description('HOLDFAST_WEBHOOK_TIMEOUT: Go duration bounding one webhook request (at most the run budget); empty for the run budget.')
@maxLength(20)
param webhookTimeout string = ''

@description('HOLDFAST_WEBHOOK_HEADERS: JSON object of static request headers for the webhook. May carry a key, so it is secure; empty for none.')
@secure()
@maxLength(4096)
param webhookHeaders string = ''

@description('HOLDFAST_WEBHOOK_AUDIENCE: Entra application ID URI or client ID of the webhook endpoint; requests then carry a token of the app identity. Empty for none.')
@maxLength(256)
param webhookAudience string = ''

@description('ProcessQueueSchedule: NCRONTAB (six fields, seconds first) of the ProcessQueue timer.')
@minLength(11)
@maxLength(100)
param processQueueSchedule string = '0 */1 * * * *'

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Consumption (Y1) only: blob URL of the uploaded package zip; empty before the first upload.')
@maxLength(2048)
param packageUrl string = ''

// ---------------------------------------------------------------------------------------------------------
// Container Apps job (hostingPlan ContainerAppsJob)

@description('ContainerAppsJob: the image the job runs (<registry>/holdfast:<tag>, set by scripts/deploy-job.sh); empty for a placeholder until the first build.')
@maxLength(512)
param containerImage string = ''

@description('ContainerAppsJob: seconds one replica may run (replicaTimeout). A run lasts this minus 30 s (HOLDFAST_RUN_BUDGET), the handler checks it against HOLDFAST_PROCESS_TIMEOUT.')
@minValue(120)
@maxValue(86400)
param jobReplicaTimeoutSeconds int = 1800

@description('ContainerAppsJob: replicas per execution (parallelism), each one handler run-once process.')
@minValue(1)
@maxValue(20)
param jobParallelism int = 1

@description('ContainerAppsJob: most executions at once (maxExecutions); the ceiling is this times parallelism times concurrency messages in flight.')
@minValue(1)
@maxValue(100)
param jobMaxExecutions int = 10

@description('ContainerAppsJob: seconds between the scaler\'s polls of the entity (pollingInterval).')
@minValue(10)
@maxValue(300)
param jobPollingIntervalSeconds int = 30

@description('ContainerAppsJob: active messages per execution: the scaler starts one execution per this many waiting messages (messageCount).')
@minValue(1)
@maxValue(5000)
param jobMessagesPerExecution int = 8

@description('ContainerAppsJob: vCPUs per replica; memory is 2 GiB per vCPU.')
@allowed([
  1
  2
  4
])
param jobCpuCores int = 1

// ---------------------------------------------------------------------------------------------------------

var isJob = hostingPlan == 'ContainerAppsJob'
var token = toLower(uniqueString(resourceGroup().id, namePrefix))

// namePrefix lower-cased with everything but a-z and 0-9 dropped ('My-App_1' gives 'myapp1'); a prefix with no
// letter or digit left falls back to 'holdfast'. Every name below starts with a fixed letter prefix ('st', 'sb-'),
// so a prefix starting with a digit is fine too.
var lowerPrefix = toLower(namePrefix)
var alphanumerics = 'abcdefghijklmnopqrstuvwxyz0123456789'
var cleanPrefix = reduce(range(0, length(lowerPrefix)), '', (kept, i) => contains(alphanumerics, substring(lowerPrefix, i, 1)) ? '${kept}${substring(lowerPrefix, i, 1)}' : kept)
var prefix = empty(cleanPrefix) ? 'holdfast' : cleanPrefix
var tags = empty(environmentName) ? {} : { 'azd-env-name': environmentName }

// HOLDFAST_MAX_SESSIONS defaults to the concurrency, as in the handler.
var effectiveMaxSessions = maxSessions == 0 ? concurrency : maxSessions

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: 'id-${prefix}-${token}'
  location: location
  tags: tags
}

// ContainerAppsJob: KEDA's scaler reads the entity's counts with its own identity (Data Owner on the entity,
// see modules/roles.bicep), so the app's identity keeps only Data Receiver and Data Sender.
resource scalerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = if (isJob) {
  name: 'id-${prefix}-${token}-scaler'
  location: location
  tags: tags
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    tags: tags
    namespaceName: 'sb-${prefix}-${token}'
    skuName: serviceBusSku
    entityKind: entityKind
    queueName: queueName
    topicName: topicName
    subscriptionName: subscriptionName
    lockDurationSeconds: lockDurationSeconds
    maxDeliveryCount: maxDeliveryCount
    messageTimeToLiveHours: messageTimeToLiveHours
    deadLetteringOnMessageExpiration: deadLetteringOnMessageExpiration
    autoDeleteOnIdle: autoDeleteOnIdle
    requiresDuplicateDetection: requiresDuplicateDetection
    duplicateDetectionWindowMinutes: duplicateDetectionWindowMinutes
    enableBatchedOperations: enableBatchedOperations
    maxSizeInMegabytes: maxSizeInMegabytes
    requiresSession: requiresSession
    principalId: identity.properties.principalId
    scalerPrincipalId: isJob ? scalerIdentity.properties.principalId : ''
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    accountName: take('st${prefix}${token}', 24)
    deploymentContainerName: 'app-package-${take(token, 8)}'
    deferralTableName: deferralTableName
    principalId: identity.properties.principalId
    hostStorage: !isJob
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: 'log-${prefix}-${token}'
    appInsightsName: 'appi-${prefix}-${token}'
    retentionInDays: logRetentionInDays
    principalId: identity.properties.principalId
    publishTelemetry: !isJob
  }
}

// The app consumes outputs of the three modules above, so it is created after their role assignments.
module functionApp 'modules/functionapp.bicep' = if (!isJob) {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    hostingPlan: hostingPlan
    planName: 'plan-${prefix}-${token}'
    appName: 'func-${prefix}-${token}'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    entityPath: serviceBus.outputs.entityPath
    deferralTableName: storage.outputs.deferralTableName
    functionTimeoutMinutes: functionTimeoutMinutes
    lockDurationSeconds: lockDurationSeconds
    messageTimeToLiveHours: messageTimeToLiveHours
    batchSize: batchSize
    concurrency: concurrency
    requiresSession: requiresSession
    maxSessions: effectiveMaxSessions
    processor: processor
    webhookUrl: webhookUrl
    webhookTimeout: webhookTimeout
    webhookHeaders: webhookHeaders
    webhookAudience: webhookAudience
    processQueueSchedule: processQueueSchedule
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    packageUrl: packageUrl
  }
}

module job 'modules/containerappsjob.bicep' = if (isJob) {
  name: 'containerappsjob'
  params: {
    location: location
    tags: tags
    environmentName: 'cae-${prefix}-${token}'
    jobName: 'caj-${prefix}-${token}'
    registryName: 'cr${prefix}${token}'
    containerImage: containerImage
    identityId: identity.id
    identityClientId: identity.properties.clientId
    principalId: identity.properties.principalId
    scalerIdentityId: scalerIdentity.id
    workspaceId: monitoring.outputs.workspaceId
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    entityPath: serviceBus.outputs.entityPath
    tableEndpoint: storage.outputs.tableEndpoint
    deferralTableName: storage.outputs.deferralTableName
    replicaTimeoutSeconds: jobReplicaTimeoutSeconds
    parallelism: jobParallelism
    maxExecutions: jobMaxExecutions
    pollingIntervalSeconds: jobPollingIntervalSeconds
    messagesPerExecution: jobMessagesPerExecution
    cpuCores: jobCpuCores
    lockDurationSeconds: lockDurationSeconds
    messageTimeToLiveHours: messageTimeToLiveHours
    batchSize: batchSize
    concurrency: concurrency
    requiresSession: requiresSession
    maxSessions: effectiveMaxSessions
    processor: processor
    webhookUrl: webhookUrl
    webhookTimeout: webhookTimeout
    webhookHeaders: webhookHeaders
    webhookAudience: webhookAudience
  }
}

@description('Function app name; empty for ContainerAppsJob.')
output functionAppName string = isJob ? '' : functionApp.outputs.name

@description('Resource ID of the function app (scripts/deploy-consumption.sh syncs its triggers); empty for ContainerAppsJob.')
output functionAppId string = isJob ? '' : functionApp.outputs.id

@description('Hosting plan of the app; the deploy scripts pick the deployment method from it.')
output hostingPlan string = hostingPlan

@description('Function app host name; the drain API is https://<host>/api/deferred. Empty for ContainerAppsJob (run handler serve).')
output functionAppHostName string = isJob ? '' : functionApp.outputs.defaultHostName

@description('Service Bus fully qualified namespace.')
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace

@description('Queue name, or <topic>/Subscriptions/<subscription> (HOLDFAST_ENTITY).')
output queueName string = serviceBus.outputs.entityPath

@description('Table endpoint of the ledger storage account.')
output tableEndpoint string = storage.outputs.tableEndpoint

@description('Storage account holding host storage, the package container and the ledger table.')
output storageAccountName string = storage.outputs.accountName

@description('Blob container for the deployment package (Y1: upload the zip here, then set packageUrl).')
output deploymentContainerName string = storage.outputs.deploymentContainerName

@description('Consumption only: the package URL the app runs from (packageUrl), empty on Flex.')
output packageUrl string = packageUrl

@description('URL of the deployment package container; a package blob URL is this, a slash and the blob name.')
output deploymentContainerUrl string = '${storage.outputs.blobEndpoint}${storage.outputs.deploymentContainerName}'

@description('Client ID of the app identity (AZURE_CLIENT_ID).')
output identityClientId string = identity.properties.clientId

@description('ContainerAppsJob: the job name; empty on the Functions plans.')
output jobName string = isJob ? job.outputs.name : ''

@description('ContainerAppsJob: the container registry that scripts/deploy-job.sh builds the image in; empty on the Functions plans.')
output containerRegistryName string = isJob ? job.outputs.registryName : ''

@description('ContainerAppsJob: the registry login server; empty on the Functions plans.')
output containerRegistryLoginServer string = isJob ? job.outputs.registryLoginServer : ''

@description('ContainerAppsJob: the image the job runs (HOLDFAST_IMAGE keeps it across provisions); empty on the Functions plans.')
output containerImage string = isJob ? job.outputs.image : ''
