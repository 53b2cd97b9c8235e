// Service Bus namespace and the entity holdfast receives from: a queue, or a topic with one subscription.
// The app's identity gets Data Receiver and Data Sender on that entity only (not on the namespace): the
// handler performs no management operations, so entity scope is enough.
import { roleIds } from 'roles.bicep'

@description('Azure region of the namespace.')
@minLength(1)
@maxLength(64)
param location string

@description('Tags applied to every resource.')
param tags object

@description('Namespace name: 6-50 letters, digits and hyphens, starting with a letter.')
@minLength(6)
@maxLength(50)
param namespaceName string

@description('Namespace tier. Basic is not offered: it has no duplicate detection and no topics.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string

@description('Receive from a queue, or from a subscription of a topic.')
@allowed([
  'queue'
  'topic'
])
param entityKind string

@description('Queue name (entityKind queue).')
@minLength(1)
@maxLength(260)
param queueName string

@description('Topic name (entityKind topic).')
@minLength(1)
@maxLength(260)
param topicName string

@description('Subscription name (entityKind topic).')
@minLength(1)
@maxLength(50)
param subscriptionName string

@description('Peek-lock duration in seconds. The service maximum is 300 (PT5M); holdfast renews locks before they expire.')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int

@description('Deliveries before the broker dead-letters a message (MaxDeliveryCountExceeded). Abandon, lock loss and defer all count.')
@minValue(10)
@maxValue(100)
param maxDeliveryCount int

@description('Default message time to live in hours. Deferred messages expire too, so this bounds how long a deferred message can wait to be drained.')
@minValue(1)
@maxValue(8760)
param messageTimeToLiveHours int

@description('Move expired messages to the dead-letter queue instead of dropping them.')
param deadLetteringOnMessageExpiration bool

@description('Delete the entity after this idle time. The first value means never.')
@allowed([
  'P10675199DT2H48M5.4775807S'
  'P30D'
  'P90D'
  'P365D'
])
param autoDeleteOnIdle string

@description('Drop a message whose MessageId was already seen within the window. Cannot be changed after the entity is created.')
param requiresDuplicateDetection bool

@description('Duplicate detection window in minutes (service range 20 s to 7 days).')
@minValue(10)
@maxValue(10080)
param duplicateDetectionWindowMinutes int

@description('Let the broker batch store operations (higher throughput).')
param enableBatchedOperations bool

@description('Maximum entity size in megabytes. Deferred messages count toward it.')
@allowed([
  1024
  2048
  3072
  4096
  5120
])
param maxSizeInMegabytes int

@description('Session-enabled queue or subscription: the handler then accepts sessions (HOLDFAST_REQUIRES_SESSION). Cannot be changed after the entity is created.')
param requiresSession bool

@description('Principal ID of the app identity that gets Data Receiver and Data Sender on the entity.')
@minLength(36)
@maxLength(36)
param principalId string

@description('Principal ID of the KEDA scaler identity that reads the entity counts (ContainerAppsJob); empty for none.')
@maxLength(36)
param scalerPrincipalId string

var isQueue = entityKind == 'queue'
var hasScaler = !empty(scalerPrincipalId)
var lockDuration = 'PT${lockDurationSeconds}S'
var defaultMessageTimeToLive = 'PT${messageTimeToLiveHours}H'
var duplicateDetectionHistoryTimeWindow = 'PT${duplicateDetectionWindowMinutes}M'

resource serviceBusNamespace 'Microsoft.ServiceBus/namespaces@2026-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: skuName == 'Premium' ? 1 : null
  }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: true // Entra ID only: no SAS keys exist to leak
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2026-01-01' = if (isQueue) {
  parent: serviceBusNamespace
  name: queueName
  properties: {
    lockDuration: lockDuration
    maxDeliveryCount: maxDeliveryCount
    defaultMessageTimeToLive: defaultMessageTimeToLive
    deadLetteringOnMessageExpiration: deadLetteringOnMessageExpiration
    autoDeleteOnIdle: autoDeleteOnIdle
    requiresDuplicateDetection: requiresDuplicateDetection
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    enableBatchedOperations: enableBatchedOperations
    maxSizeInMegabytes: maxSizeInMegabytes
    requiresSession: requiresSession
    enablePartitioning: false // a partitioned entity cannot receive deferred messages from two partitions in one call
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2026-01-01' = if (!isQueue) {
  parent: serviceBusNamespace
  name: topicName
  properties: {
    defaultMessageTimeToLive: defaultMessageTimeToLive
    autoDeleteOnIdle: autoDeleteOnIdle
    requiresDuplicateDetection: requiresDuplicateDetection
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    enableBatchedOperations: enableBatchedOperations
    maxSizeInMegabytes: maxSizeInMegabytes
    enablePartitioning: false
  }
}

resource topicSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2026-01-01' = if (!isQueue) {
  parent: topic
  name: subscriptionName
  properties: {
    lockDuration: lockDuration
    maxDeliveryCount: maxDeliveryCount
    defaultMessageTimeToLive: defaultMessageTimeToLive
    deadLetteringOnMessageExpiration: deadLetteringOnMessageExpiration
    autoDeleteOnIdle: autoDeleteOnIdle
    enableBatchedOperations: enableBatchedOperations
    requiresSession: requiresSession
  }
}

resource queueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isQueue) {
  name: guid(queue.id, principalId, roleIds.serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isQueue) {
  name: guid(queue.id, principalId, roleIds.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Topic variant: receive from the subscription, resubmit by sending to the topic.
resource subscriptionReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isQueue) {
  name: guid(topicSubscription.id, principalId, roleIds.serviceBusDataReceiver)
  scope: topicSubscription
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isQueue) {
  name: guid(topic.id, principalId, roleIds.serviceBusDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// ContainerAppsJob: the scaler identity reads the message counts of the entity it scales on (the queue, or the
// subscription), nothing else. See roles.bicep for why it is Data Owner.
resource queueScaler 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isQueue && hasScaler) {
  name: guid(queue.id, scalerPrincipalId, roleIds.serviceBusDataOwner)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataOwner)
    principalId: scalerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource subscriptionScaler 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isQueue && hasScaler) {
  name: guid(topicSubscription.id, scalerPrincipalId, roleIds.serviceBusDataOwner)
  scope: topicSubscription
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataOwner)
    principalId: scalerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('Namespace resource name.')
output namespaceName string = serviceBusNamespace.name

@description('Fully qualified namespace host name, without scheme or port (ServiceBusConnection__fullyQualifiedNamespace).')
output fullyQualifiedNamespace string = split(replace(serviceBusNamespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]

@description('HOLDFAST_ENTITY value: the queue name, or <topic>/Subscriptions/<subscription>.')
output entityPath string = isQueue ? queueName : '${topicName}/Subscriptions/${subscriptionName}'
