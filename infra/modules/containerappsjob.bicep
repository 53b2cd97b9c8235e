// hostingPlan=ContainerAppsJob: the handler as an event-driven Container Apps job. KEDA's azure-servicebus
// scaler polls the entity's active message count and starts executions; each execution runs `parallelism`
// replicas of `handler run-once`, which process until the entity stays empty or the run budget ends, then exit.
// The image comes from the registry created here (scripts/deploy-job.sh builds it there with `az acr build`,
// no local Docker engine). Every identity is user-assigned: the app's pulls the image and runs the handler
// (Service Bus Data Receiver/Sender, Table Data Contributor), the scaler's only reads the entity's counts (its
// Data Owner role is assigned on the entity in servicebus.bicep). No key or secret exists.
import { roleIds } from 'roles.bicep'

@description('Azure region of the environment, the registry and the job.')
@minLength(1)
@maxLength(64)
param location string

@description('Tags applied to every resource.')
param tags object

@description('Container Apps environment name.')
@minLength(2)
@maxLength(60)
param environmentName string

@description('Container Apps job name: lower-case letters, digits and hyphens.')
@minLength(2)
@maxLength(32)
param jobName string

@description('Container registry name: 5-50 letters and digits.')
@minLength(5)
@maxLength(50)
param registryName string

@description('Container image the job runs; empty for a public placeholder until the first build (scripts/deploy-job.sh).')
@maxLength(512)
param containerImage string

@description('Resource ID of the app identity: pulls the image, runs the handler.')
@minLength(1)
@maxLength(512)
param identityId string

@description('Client ID of the app identity (AZURE_CLIENT_ID and the identity-based connection settings).')
@minLength(36)
@maxLength(36)
param identityClientId string

@description('Principal ID of the app identity, which gets AcrPull on the registry.')
@minLength(36)
@maxLength(36)
param principalId string

@description('Resource ID of the scaler identity that KEDA reads the entity counts with.')
@minLength(1)
@maxLength(512)
param scalerIdentityId string

@description('Resource ID of the Log Analytics workspace that receives the console logs.')
@minLength(1)
@maxLength(512)
param workspaceId string

@description('Service Bus namespace name (the scaler metadata).')
@minLength(6)
@maxLength(50)
param serviceBusNamespaceName string

@description('Service Bus fully qualified namespace (ServiceBusConnection__fullyQualifiedNamespace).')
@minLength(1)
@maxLength(300)
param serviceBusNamespace string

@description('HOLDFAST_ENTITY: the queue, or <topic>/Subscriptions/<subscription>.')
@minLength(1)
@maxLength(600)
param entityPath string

@description('Table service endpoint of the storage account (DeferralStorage__tableServiceUri).')
@minLength(1)
@maxLength(2048)
param tableEndpoint string

@description('HOLDFAST_DEFERRAL_TABLE: the deferral ledger table.')
@minLength(3)
@maxLength(63)
param deferralTableName string

@description('Seconds one replica may run (replicaTimeout); HOLDFAST_PROCESS_TIMEOUT, and the run budget is this minus 30 s.')
@minValue(120)
@maxValue(86400)
param replicaTimeoutSeconds int

@description('Replicas each execution runs at once (parallelism); each is one run-once process.')
@minValue(1)
@maxValue(20)
param parallelism int

@description('Most executions running at once (maxExecutions).')
@minValue(1)
@maxValue(100)
param maxExecutions int

@description('Seconds between two polls of the entity by the scaler (pollingInterval).')
@minValue(10)
@maxValue(300)
param pollingIntervalSeconds int

@description('Active messages per execution: the scaler starts one execution per this many messages (messageCount).')
@minValue(1)
@maxValue(5000)
param messagesPerExecution int

@description('vCPUs of each replica (memory is 2 GiB per vCPU, the Consumption profile ratio).')
@allowed([
  1
  2
  4
])
param cpuCores int

@description('HOLDFAST_LOCK_DURATION: the peek-lock duration of the entity in seconds.')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int

@description('HOLDFAST_MESSAGE_TTL: the entity\'s default message time-to-live in hours; the ledger records when a deferred message expires from it.')
@minValue(1)
@maxValue(8760)
param messageTimeToLiveHours int

@description('HOLDFAST_BATCH_SIZE: messages requested per receive call.')
@minValue(1)
@maxValue(5000)
param batchSize int

@description('HOLDFAST_CONCURRENCY: messages processed at once by one replica.')
@minValue(1)
@maxValue(1000)
param concurrency int

@description('HOLDFAST_REQUIRES_SESSION: the entity is session-enabled.')
param requiresSession bool

@description('HOLDFAST_MAX_SESSIONS: sessions one run holds at once (session-enabled entities).')
@minValue(1)
@maxValue(1000)
param maxSessions int

@description('HOLDFAST_PROCESSOR: the built-in message processor.')
@allowed([
  'demo'
  'webhook'
])
param processor string

@description('HOLDFAST_WEBHOOK_URL for the webhook processor. May carry a key, so it is secure; empty when unused.')
@secure()
@maxLength(2048)
param webhookUrl string

@description('HOLDFAST_WEBHOOK_TIMEOUT: Go duration bounding one webhook request; empty for the run budget.')
@maxLength(20)
param webhookTimeout string

@description('HOLDFAST_WEBHOOK_HEADERS: JSON object of static webhook request headers. May carry a key, so it is secure.')
@secure()
@maxLength(4096)
param webhookHeaders string

@description('HOLDFAST_WEBHOOK_AUDIENCE: Entra audience of the webhook endpoint; empty for no token.')
@maxLength(256)
param webhookAudience string

// The public image of Microsoft's Container Apps jobs quickstart: it prints a line and exits, so executions
// started before the first build end at once instead of running until replicaTimeout.
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart-jobs:latest'
var image = empty(containerImage) ? placeholderImage : containerImage

// A run stops 30 s before the replica is killed so that it can abandon what it still holds (the handler's
// margin, as under functionTimeout); a lock is never renewed for longer than a run lasts.
var runBudget = '${replicaTimeoutSeconds - 30}s'
var managedIdentity = 'managedidentity'

// The handler's settings: the same as the function app's, without the Functions host's own, plus
// HOLDFAST_PROCESS_TIMEOUT, which the handler checks the budget against in standalone mode.
var settings = {
  AZURE_CLIENT_ID: identityClientId
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
  ServiceBusConnection__credential: managedIdentity
  ServiceBusConnection__clientId: identityClientId
  DeferralStorage__tableServiceUri: tableEndpoint
  DeferralStorage__credential: managedIdentity
  DeferralStorage__clientId: identityClientId
  HOLDFAST_ENTITY: entityPath
  HOLDFAST_DEFERRAL_TABLE: deferralTableName
  HOLDFAST_BATCH_SIZE: string(batchSize)
  HOLDFAST_CONCURRENCY: string(concurrency)
  HOLDFAST_REQUIRES_SESSION: string(requiresSession)
  HOLDFAST_MAX_SESSIONS: string(maxSessions)
  HOLDFAST_RUN_BUDGET: runBudget
  HOLDFAST_MAX_LOCK_RENEWAL: runBudget
  HOLDFAST_PROCESS_TIMEOUT: '${replicaTimeoutSeconds}s'
  HOLDFAST_LOCK_DURATION: '${lockDurationSeconds}s'
  HOLDFAST_MESSAGE_TTL: '${messageTimeToLiveHours}h'
  HOLDFAST_PROCESSOR: processor
  HOLDFAST_WEBHOOK_TIMEOUT: webhookTimeout
  HOLDFAST_WEBHOOK_AUDIENCE: webhookAudience
}
// Secure settings are job secrets (only when set: a secret needs a value) that the environment refers to.
var secretEnv = concat(empty(webhookUrl) ? [] : [
  {
    name: 'HOLDFAST_WEBHOOK_URL'
    secretRef: 'webhook-url'
  }
], empty(webhookHeaders) ? [] : [
  {
    name: 'HOLDFAST_WEBHOOK_HEADERS'
    secretRef: 'webhook-headers'
  }
])
var env = concat(map(items(settings), s => {
  name: s.key
  value: s.value
}), secretEnv)

var isQueue = !contains(entityPath, '/')
var entityParts = split(entityPath, '/')
var queueMetadata = {
  namespace: serviceBusNamespaceName
  queueName: entityPath
  messageCount: string(messagesPerExecution)
}
var subscriptionMetadata = {
  namespace: serviceBusNamespaceName
  topicName: entityParts[0]
  subscriptionName: last(entityParts)
  messageCount: string(messagesPerExecution)
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false // no registry password: pulls and builds authenticate with Entra ID
    anonymousPullEnabled: false
    roleAssignmentMode: 'LegacyRegistryPermissions' // so that AcrPull covers every repository
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, roleIds.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Console logs go to Azure Monitor and from there, by the diagnostic setting, to the workspace: the
// 'log-analytics' destination would need the workspace's shared key.
resource environment 'Microsoft.App/managedEnvironments@2026-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource job 'Microsoft.App/jobs@2026-01-01' = {
  name: jobName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
      '${scalerIdentityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Event'
      replicaTimeout: replicaTimeoutSeconds
      replicaRetryLimit: 0 // a failed run is not retried: the scaler starts new executions while messages wait
      registries: [
        {
          server: registry.properties.loginServer
          identity: identityId
        }
      ]
      secrets: concat(empty(webhookUrl) ? [] : [
        {
          name: 'webhook-url'
          value: webhookUrl
        }
      ], empty(webhookHeaders) ? [] : [
        {
          name: 'webhook-headers'
          value: webhookHeaders
        }
      ])
      eventTriggerConfig: {
        parallelism: parallelism
        replicaCompletionCount: parallelism
        scale: {
          minExecutions: 0
          maxExecutions: maxExecutions
          pollingInterval: pollingIntervalSeconds
          rules: [
            {
              name: 'servicebus'
              type: 'azure-servicebus'
              metadata: isQueue ? queueMetadata : subscriptionMetadata
              identity: scalerIdentityId
            }
          ]
        }
      }
    }
    template: {
      containers: [
        {
          name: 'handler'
          image: image
          args: [
            'run-once'
          ]
          env: env
          resources: {
            cpu: cpuCores
            memory: '${cpuCores * 2}Gi'
          }
        }
      ]
    }
  }
  dependsOn: [
    acrPull // the first execution pulls with the app identity
  ]
}

@description('Job name.')
output name string = job.name

@description('Resource ID of the job.')
output id string = job.id

@description('Container registry name (az acr build --registry).')
output registryName string = registry.name

@description('Registry login server; images are <loginServer>/holdfast:<tag>.')
output registryLoginServer string = registry.properties.loginServer

@description('Image the job runs now.')
output image string = image
